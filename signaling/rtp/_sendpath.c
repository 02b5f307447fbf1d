/* The per-viewer send path of the WebRTC fan-out in C: SRTP-protecting a frame's packets
 * in place and sending them with as few system calls as possible.
 *
 * Same behaviour as the pure-Python path in signaling/rtp/srtp_frames.py and
 * signaling/rtp/datagrams.py (used where this module was not built); per packet that path
 * spends most of its time in the interpreter, not in libsrtp or the kernel. libsrtp
 * itself is pylibsrtp's: its srtp_protect and the session's context arrive as addresses,
 * read by name from one object (`srtp`: signaling/adapters/pylibsrtp_private.py's
 * SrtpAddresses), so no second copy of libsrtp is linked here. Every function and
 * constructor taking more than a few arguments takes them by keyword only: a mistake in
 * their order cannot pass a number where an address belongs. Linux only (UDP
 * segmentation offload).
 */
#define _GNU_SOURCE /* sendmmsg */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define RTP_HEADER_SIZE 12
#define MARKER_BIT 0x80
#define MAX_SEGMENTS 32
#define MAX_TRAILER 144   /* libsrtp's SRTP_MAX_TRAILER_LEN: the tag and an MKI */

#define SEND_FULL 1           /* the socket could not take it all: the rest was dropped */
#define SEND_UNSEGMENTED 2    /* segmentation offload was refused: sent one by one */

typedef int (*srtp_protect_fn)(void *context, void *packet, int *length);

/* Packs each body behind its RTP header at `base + offset` and protects it in place;
 * each protected size goes to `record`.
 * Returns the offset after the last packet; -1 with a Python error set (bad input);
 * -2 with *status set when libsrtp refused a packet. */
typedef int (*size_sink)(void *sink, Py_ssize_t size);

static Py_ssize_t
protect_packets(srtp_protect_fn protect, void *context, unsigned char *base,
                Py_ssize_t capacity, Py_ssize_t offset, int first_byte, int payload_type,
                unsigned long ssrc, unsigned long sequence, unsigned long timestamp,
                PyObject *bodies, Py_ssize_t marker_index, size_sink record, void *sink,
                int *status)
{
    Py_ssize_t count = PyList_GET_SIZE(bodies);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *body = PyList_GET_ITEM(bodies, index);
        if (!PyBytes_Check(body)) {
            PyErr_SetString(PyExc_TypeError, "bodies must be bytes");
            return -1;
        }
        Py_ssize_t body_size = PyBytes_GET_SIZE(body);
        Py_ssize_t size = RTP_HEADER_SIZE + body_size;
        if (offset < 0 || offset + size + MAX_TRAILER > capacity) {
            PyErr_SetString(PyExc_ValueError, "the buffer has no room for the packet");
            return -1;
        }
        unsigned char *packet = base + offset;
        uint16_t number = (uint16_t)((sequence + index) & 0xFFFF);
        packet[0] = (unsigned char)first_byte;
        packet[1] = (unsigned char)(payload_type | (index == marker_index ? MARKER_BIT : 0));
        packet[2] = number >> 8;
        packet[3] = number & 0xFF;
        packet[4] = (timestamp >> 24) & 0xFF;
        packet[5] = (timestamp >> 16) & 0xFF;
        packet[6] = (timestamp >> 8) & 0xFF;
        packet[7] = timestamp & 0xFF;
        packet[8] = (ssrc >> 24) & 0xFF;
        packet[9] = (ssrc >> 16) & 0xFF;
        packet[10] = (ssrc >> 8) & 0xFF;
        packet[11] = ssrc & 0xFF;
        memcpy(packet + RTP_HEADER_SIZE, PyBytes_AS_STRING(body), body_size);
        int length = (int)size;
        *status = protect(context, packet, &length);
        if (*status != 0)
            return -2;
        if (record(sink, length) < 0)
            return -1;
        offset += length;
    }
    return offset;
}

static int
append_to_list(void *sink, Py_ssize_t size)
{
    PyObject *number = PyLong_FromSsize_t(size);
    if (number == NULL)
        return -1;
    int result = PyList_Append((PyObject *)sink, number);
    Py_DECREF(number);
    return result;
}

/* The addresses one `srtp` object (SrtpAddresses) names. */
typedef struct {
    srtp_protect_fn protect, protect_rtcp;
    void *context;
} SrtpAddresses;

static int
address_named(PyObject *srtp, const char *name, void **address)
{
    PyObject *value = PyObject_GetAttrString(srtp, name);
    if (value == NULL)
        return -1;
    unsigned long long number = PyLong_AsUnsignedLongLong(value);
    Py_DECREF(value);
    if (number == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    if (number == 0) {
        PyErr_Format(PyExc_ValueError, "srtp.%s is a null address", name);
        return -1;
    }
    *address = (void *)(uintptr_t)number;
    return 0;
}

static int
read_srtp_addresses(PyObject *srtp, SrtpAddresses *out)
{
    void *protect, *protect_rtcp;
    if (address_named(srtp, "protect", &protect) < 0 ||
        address_named(srtp, "protect_rtcp", &protect_rtcp) < 0 ||
        address_named(srtp, "context", &out->context) < 0)
        return -1;
    out->protect = (srtp_protect_fn)(uintptr_t)protect;
    out->protect_rtcp = (srtp_protect_fn)(uintptr_t)protect_rtcp;
    return 0;
}

static int
keywords_only(PyObject *args, const char *function)
{
    if (PyTuple_GET_SIZE(args) == 0)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes keyword arguments only", function);
    return -1;
}

/* protect(*, srtp, buffer, offset, first_byte, payload_type, ssrc, sequence, timestamp,
 *         bodies, marker_index, sizes) -> new offset
 * Each body behind its RTP header, protected, from `offset` on; sizes appended to
 * `sizes`. A negative result is -(libsrtp status): nothing of this call counts. */
static PyObject *
sendpath_protect(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"srtp", "buffer", "offset", "first_byte", "payload_type",
                               "ssrc", "sequence", "timestamp", "bodies", "marker_index",
                               "sizes", NULL};
    PyObject *srtp;
    SrtpAddresses addresses;
    Py_buffer buffer;
    Py_ssize_t offset, marker_index;
    int first_byte, payload_type, status = 0;
    unsigned long ssrc, sequence, timestamp;
    PyObject *bodies, *sizes, *result = NULL;

    if (keywords_only(args, "protect") < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "Ow*niikkkO!nO!", keywords, &srtp,
                                     &buffer, &offset, &first_byte, &payload_type, &ssrc,
                                     &sequence, &timestamp, &PyList_Type, &bodies,
                                     &marker_index, &PyList_Type, &sizes))
        return NULL;
    if (read_srtp_addresses(srtp, &addresses) < 0) {
        PyBuffer_Release(&buffer);
        return NULL;
    }
    Py_ssize_t sizes_before = PyList_GET_SIZE(sizes);
    Py_ssize_t end = protect_packets(
        addresses.protect, addresses.context,
        buffer.buf, buffer.len, offset, first_byte, payload_type, ssrc, sequence, timestamp,
        bodies, marker_index, append_to_list, sizes, &status);
    if (end == -2) {
        if (PyList_SetSlice(sizes, sizes_before, PyList_GET_SIZE(sizes), NULL) == 0)
            result = PyLong_FromLong(-status);
    } else if (end >= 0) {
        result = PyLong_FromSsize_t(end);
    }
    PyBuffer_Release(&buffer);
    return result;
}

static int
would_block(int error)
{
    return error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS;
}

static int
segmentation_refused(int error)
{
    return error == EINVAL || error == EIO || error == ENOPROTOOPT || error == EOPNOTSUPP;
}

/* One datagram; 0 sent, SEND_FULL, or -1 with errno set. */
static int
send_one(int fd, const unsigned char *data, size_t size, const struct sockaddr *address,
         socklen_t address_size)
{
    if (sendto(fd, data, size, 0, address, address_size) >= 0)
        return 0;
    return would_block(errno) ? SEND_FULL : -1;
}

/* A run of datagrams of `segment` bytes (the last may be shorter) in one call. */
static int
send_run(int fd, unsigned char *data, size_t size, uint16_t segment,
         const struct sockaddr *address, socklen_t address_size)
{
    union {
        char buffer[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct iovec vector = {.iov_base = data, .iov_len = size};
    struct msghdr message = {
        .msg_name = (void *)address,
        .msg_namelen = address_size,
        .msg_iov = &vector,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof(control.buffer),
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_UDP;
    header->cmsg_type = UDP_SEGMENT;
    header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(header), &segment, sizeof(segment));
    if (sendmsg(fd, &message, 0) >= 0)
        return 0;
    return would_block(errno) ? SEND_FULL : -1;
}

/* Where the run of datagrams from `start` ends: with segmentation, the datagrams of the
 * same size that follow (at most MAX_SEGMENTS, the last may be shorter); without, one. */
static Py_ssize_t
run_end(const size_t *lengths, Py_ssize_t start, Py_ssize_t count, int segmented)
{
    Py_ssize_t end = start + 1;
    if (!segmented)
        return end;
    Py_ssize_t limit = count < start + MAX_SEGMENTS ? count : start + MAX_SEGMENTS;
    while (end < limit && lengths[end] == lengths[start])
        end++;
    if (end < limit && lengths[end] < lengths[start])
        end++;
    return end;
}

/* The datagrams laid end to end at `base`, of `lengths`, in order: runs of equal size
 * (the last of a run may be shorter) in one segmented call each while *segmented.
 * Returns flags (SEND_FULL: the rest was dropped; SEND_UNSEGMENTED: the kernel refused
 * segmentation, *segmented is now 0 and the rest went one by one), or -1 with errno. */
static int
send_datagrams(int fd, const struct sockaddr *to, socklen_t to_size, unsigned char *base,
               const size_t *lengths, Py_ssize_t count, int *segmented)
{
    Py_ssize_t start = 0;
    size_t offset = 0;
    int flags = 0, status = 0;
    while (start < count && status == 0) {
        size_t segment = lengths[start];
        Py_ssize_t end = run_end(lengths, start, count, *segmented);
        size_t run = segment * (size_t)(end - start - 1) + lengths[end - 1];
        if (end - start == 1) {
            status = send_one(fd, base + offset, run, to, to_size);
        } else {
            status = send_run(fd, base + offset, run, (uint16_t)segment, to, to_size);
            if (status < 0 && segmentation_refused(errno)) {
                *segmented = 0;
                flags |= SEND_UNSEGMENTED;
                status = 0;
                continue; /* this run again, one datagram at a time */
            }
        }
        start = end;
        offset += run;
    }
    return status < 0 ? -1 : flags | status;
}

/* send(fd, address, data, sizes, segmented) -> flags
 * The datagrams laid end to end in `data`, of `sizes`, to the sockaddr `address`
 * (see send_datagrams). */
static PyObject *
sendpath_send(PyObject *module, PyObject *args)
{
    int fd, segmented;
    Py_buffer address, data;
    PyObject *sizes, *result = NULL;
    if (!PyArg_ParseTuple(args, "iy*y*O!p", &fd, &address, &data, &PyList_Type, &sizes,
                          &segmented))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(sizes), total = 0;
    size_t *lengths = PyMem_Malloc(sizeof(size_t) * (count ? count : 1));
    if (lengths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_ssize_t length = PyLong_AsSsize_t(PyList_GET_ITEM(sizes, index));
        if (length < 0 || length > 0xFFFF) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a datagram size is out of range");
            goto done;
        }
        lengths[index] = (size_t)length;
        total += length;
    }
    if (total > data.len) {
        PyErr_SetString(PyExc_ValueError, "the sizes add up to more than the data");
        goto done;
    }
    int flags = send_datagrams(fd, address.buf, (socklen_t)address.len, data.buf, lengths,
                               count, &segmented);
    if (flags < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    else
        result = PyLong_FromLong(flags);
done:
    PyMem_Free(lengths);
    PyBuffer_Release(&address);
    PyBuffer_Release(&data);
    return result;
}

/* sockaddr(host, port) -> bytes: the socket address `send` takes, for a numeric host. */
static PyObject *
sendpath_sockaddr(PyObject *module, PyObject *args)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si", &host, &port))
        return NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    struct addrinfo *found = NULL;
    int error = getaddrinfo(host, service, &hints, &found);
    if (error != 0) {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s (%s)", host,
                     gai_strerror(error));
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize((const char *)found->ai_addr,
                                                 (Py_ssize_t)found->ai_addrlen);
    freeaddrinfo(found);
    return result;
}

/* --- the fan-out over viewers ---------------------------------------------------- */

#define HISTORY 128    /* frames (or paced runs) remembered per viewer for NACKs (rtp_sender.py) */

/* One viewer's sending side once it is under way (its first frame was sent from Python,
 * which fixed its timestamp origin). The SRTP session and the socket belong to Python
 * objects kept alive by the viewer's sender; this holds their addresses only. */
#define MAX_CNAME 255

typedef struct {
    PyObject_HEAD
    srtp_protect_fn protect;
    srtp_protect_fn protect_rtcp;
    void *context;
    unsigned char cname[MAX_CNAME];
    int cname_size;
    int fd;
    unsigned long long socket_id;    /* the socket behind fd: dups of one socket share it */
    struct sockaddr_storage address;
    socklen_t address_size;
    int segmented;
    int first_byte;
    int payload_type;
    unsigned long ssrc;
    unsigned long sequence;          /* the next packet's, 16 bits */
    unsigned long timestamp_offset;  /* added to a frame's ticks, modulo 2^32 */
    int awaiting_keyframe;           /* its socket was full: nothing until a keyframe */
    int error;                       /* errno of a failed send, or libsrtp's status */
    int srtp_error;                  /* 1 if `error` is libsrtp's */
    unsigned long long packets, octets;            /* RTP packets and payload bytes */
    unsigned long long wire_packets, wire_octets;  /* datagrams and their bytes */
    unsigned long long ntp;          /* the last frame sent: its wall clock (NTP) ... */
    unsigned long rtp_timestamp;     /* ... and its RTP timestamp */
    unsigned long long serials[HISTORY];
    uint16_t firsts[HISTORY];
    int history_count, history_next;
} ViewerState;

static int
viewer_state_init(ViewerState *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"srtp", "fd", "address", "segmented", "first_byte",
                               "payload_type", "ssrc", "sequence", "timestamp_offset",
                               "cname", "packets", "octets", NULL};
    PyObject *srtp;
    SrtpAddresses addresses;
    Py_buffer address, cname;
    if (keywords_only(args, "ViewerState") < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "Oiy*piikkky*KK", keywords, &srtp,
                                     &self->fd, &address, &self->segmented,
                                     &self->first_byte, &self->payload_type, &self->ssrc,
                                     &self->sequence, &self->timestamp_offset, &cname,
                                     &self->packets, &self->octets))
        return -1;
    if (read_srtp_addresses(srtp, &addresses) < 0) {
        PyBuffer_Release(&address);
        PyBuffer_Release(&cname);
        return -1;
    }
    int bad_address = address.len <= 0 || (size_t)address.len > sizeof(self->address);
    int bad_cname = cname.len > MAX_CNAME;
    if (!bad_address && !bad_cname) {
        memcpy(&self->address, address.buf, address.len);
        self->address_size = (socklen_t)address.len;
        memcpy(self->cname, cname.buf, cname.len);
        self->cname_size = (int)cname.len;
    }
    PyBuffer_Release(&address);
    PyBuffer_Release(&cname);
    if (bad_address || bad_cname) {
        PyErr_SetString(PyExc_ValueError, bad_address ? "not a socket address"
                                                      : "a CNAME is at most 255 bytes");
        return -1;
    }
    self->protect_rtcp = addresses.protect_rtcp;
    self->protect = addresses.protect;
    self->context = addresses.context;
    self->sequence &= 0xFFFF;
    self->timestamp_offset &= 0xFFFFFFFF;
    struct stat about;
    self->socket_id = fstat(self->fd, &about) == 0 ? (unsigned long long)about.st_ino
                                                     : ~(unsigned long long)self->fd;
    return 0;
}

/* history() -> [(frame serial, first sequence number)], newest first */
static PyObject *
viewer_state_history(ViewerState *self, PyObject *unused)
{
    PyObject *list = PyList_New(self->history_count);
    if (list == NULL)
        return NULL;
    for (int index = 0; index < self->history_count; index++) {
        int slot = (self->history_next - 1 - index + HISTORY) % HISTORY;
        PyObject *entry = Py_BuildValue("(Ki)", self->serials[slot], (int)self->firsts[slot]);
        if (entry == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, index, entry);
    }
    return list;
}

static PyMemberDef viewer_state_members[] = {
    {"sequence", T_ULONG, offsetof(ViewerState, sequence), READONLY, NULL},
    {"awaiting_keyframe", T_INT, offsetof(ViewerState, awaiting_keyframe), READONLY, NULL},
    {"error", T_INT, offsetof(ViewerState, error), READONLY, NULL},
    {"srtp_error", T_INT, offsetof(ViewerState, srtp_error), READONLY, NULL},
    {"packets", T_ULONGLONG, offsetof(ViewerState, packets), READONLY, NULL},
    {"octets", T_ULONGLONG, offsetof(ViewerState, octets), READONLY, NULL},
    {"wire_packets", T_ULONGLONG, offsetof(ViewerState, wire_packets), READONLY, NULL},
    {"wire_octets", T_ULONGLONG, offsetof(ViewerState, wire_octets), READONLY, NULL},
    {"ntp", T_ULONGLONG, offsetof(ViewerState, ntp), READONLY, NULL},
    {"rtp_timestamp", T_ULONG, offsetof(ViewerState, rtp_timestamp), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef viewer_state_methods[] = {
    {"history", (PyCFunction)viewer_state_history, METH_NOARGS,
     "The frames sent lately: (serial, first sequence number), newest first."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ViewerStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "signaling.rtp._sendpath.ViewerState",
    .tp_doc = "ViewerState(*, srtp, fd, address, segmented, first_byte, payload_type, ssrc, "
              "sequence, timestamp_offset, cname, packets, octets)",
    .tp_basicsize = sizeof(ViewerState),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)viewer_state_init,
    .tp_members = viewer_state_members,
    .tp_methods = viewer_state_methods,
};

typedef struct {
    unsigned long long serial, ticks, ntp;
    int keyframe, ends;
    Py_ssize_t octets;
    PyObject *bodies;
} SharedFrame;

typedef struct {
    size_t *lengths;
    Py_ssize_t count;
} LengthSink;

static int
append_length(void *sink, Py_ssize_t size)
{
    LengthSink *lengths = sink;
    lengths->lengths[lengths->count++] = (size_t)size;
    return 0;
}

/* Viewers of one socket (every viewer on the shared WebRTC port) are sent to together:
 * their protected packets are gathered, a segmented message per run, and go out in one
 * sendmmsg (bench/sendmmsg.py: about a fifth less per send than a sendmsg each). */
#define MAX_BATCH_MESSAGES 1024   /* UIO_MAXIOV, sendmmsg's limit */
#define BATCH_BYTES (1 << 20)     /* gathered before a send, unless one frame is larger */

enum { SENT, FULL, FAILED, RESEND };

typedef struct {
    ViewerState *viewer;
    Py_ssize_t first_message, messages;  /* its runs in the batch */
    Py_ssize_t packets;
    size_t bytes;                        /* its datagrams' bytes */
    unsigned long first_sequence, timestamp;
    int outcome;
    Py_ssize_t resend_from;              /* RESEND: the message whose run was refused */
} Pending;

typedef union {
    char buffer[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
} SegmentControl;

typedef struct {
    Py_ssize_t viewers, messages, lengths;
    size_t bytes;
    unsigned long long socket_id;
} Batch;

static unsigned char *batch_bytes;
static size_t batch_bytes_size;
static size_t *batch_lengths;
static Py_ssize_t batch_lengths_size;
static Pending *pending;
static Py_ssize_t pending_size;
static struct mmsghdr batch_messages[MAX_BATCH_MESSAGES];
static struct iovec batch_vectors[MAX_BATCH_MESSAGES];
static SegmentControl batch_controls[MAX_BATCH_MESSAGES];
static Py_ssize_t message_owner[MAX_BATCH_MESSAGES];        /* its viewer in `pending` */
static Py_ssize_t message_first_length[MAX_BATCH_MESSAGES]; /* its first datagram */
static size_t message_offset[MAX_BATCH_MESSAGES];  /* in batch_bytes, which may move */

static int
grow(void **buffer, size_t *have, size_t want)
{
    if (want <= *have)
        return 0;
    void *grown = PyMem_Realloc(*buffer, want);
    if (grown == NULL)
        return -1;
    *buffer = grown;
    *have = want;
    return 0;
}

/* Room in the batch for a viewer's frame: `bytes` of packets, `packets` of them. */
static int
reserve_batch(const Batch *batch, size_t bytes, Py_ssize_t packets)
{
    size_t lengths_size = sizeof(size_t) * (size_t)batch_lengths_size;
    size_t pending_bytes = sizeof(Pending) * (size_t)pending_size;
    if (grow((void **)&batch_bytes, &batch_bytes_size, batch->bytes + bytes) < 0 ||
        grow((void **)&batch_lengths, &lengths_size,
             sizeof(size_t) * (size_t)(batch->lengths + packets)) < 0 ||
        grow((void **)&pending, &pending_bytes, sizeof(Pending) * (size_t)(batch->viewers + 1)) < 0)
        return -1;
    batch_lengths_size = (Py_ssize_t)(lengths_size / sizeof(size_t));
    pending_size = (Py_ssize_t)(pending_bytes / sizeof(Pending));
    return 0;
}

/* The viewer's datagrams (batch_lengths from `first_length`, `count` of them, laid end
 * to end at `offset`) as messages: runs of equal size (the last of a run may be shorter)
 * segmented while the viewer's socket takes it, else one per datagram. */
static void
add_messages(Batch *batch, Py_ssize_t owner, int segmented, size_t offset,
             Py_ssize_t first_length, Py_ssize_t count, const struct sockaddr *to,
             socklen_t to_size)
{
    const size_t *lengths = batch_lengths + first_length;
    Py_ssize_t start = 0;
    while (start < count) {
        size_t segment = lengths[start];
        Py_ssize_t end = run_end(lengths, start, count, segmented);
        size_t run = segment * (size_t)(end - start - 1) + lengths[end - 1];
        Py_ssize_t index = batch->messages++;
        message_offset[index] = offset;
        batch_vectors[index].iov_len = run;
        struct msghdr *message = &batch_messages[index].msg_hdr;
        memset(message, 0, sizeof(*message));
        message->msg_name = (void *)to;
        message->msg_namelen = to_size;
        message->msg_iov = &batch_vectors[index];
        message->msg_iovlen = 1;
        if (end - start > 1) {
            message->msg_control = batch_controls[index].buffer;
            message->msg_controllen = sizeof(batch_controls[index].buffer);
            struct cmsghdr *header = CMSG_FIRSTHDR(message);
            header->cmsg_level = SOL_UDP;
            header->cmsg_type = UDP_SEGMENT;
            header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t size = (uint16_t)segment;
            memcpy(CMSG_DATA(header), &size, sizeof(size));
        }
        message_owner[index] = owner;
        message_first_length[index] = first_length + start;
        start = end;
        offset += run;
    }
}

/* Protects a viewer's share of the frame into the batch and adds its messages:
 * 0 added (or skipped), 1 refused by libsrtp (its error is set), -1 a Python error. */
static int
gather_viewer(Batch *batch, ViewerState *viewer, const SharedFrame *frame)
{
    Py_ssize_t packets = PyList_GET_SIZE(frame->bodies);
    LengthSink sink = {batch_lengths + batch->lengths, 0};
    unsigned long first = viewer->sequence;
    unsigned long timestamp =
        (unsigned long)((frame->ticks + viewer->timestamp_offset) & 0xFFFFFFFF);
    int status = 0;
    Py_ssize_t end = protect_packets(viewer->protect, viewer->context, batch_bytes,
                                     (Py_ssize_t)batch_bytes_size, (Py_ssize_t)batch->bytes,
                                     viewer->first_byte, viewer->payload_type, viewer->ssrc,
                                     first, timestamp, frame->bodies,
                                     frame->ends ? packets - 1 : -1,
                                     append_length, &sink, &status);
    if (end == -1)
        return -1;
    if (end == -2) {
        viewer->error = status;
        viewer->srtp_error = 1;
        return 1;
    }
    viewer->sequence = (first + packets) & 0xFFFF;
    Py_ssize_t owner = batch->viewers++;
    Pending *entry = &pending[owner];
    *entry = (Pending){.viewer = viewer, .first_message = batch->messages, .packets = packets,
                       .bytes = (size_t)end - batch->bytes, .first_sequence = first,
                       .timestamp = timestamp, .outcome = SENT};
    add_messages(batch, owner, viewer->segmented, batch->bytes, batch->lengths, packets,
                 (struct sockaddr *)&viewer->address, viewer->address_size);
    entry->messages = batch->messages - entry->first_message;
    batch->lengths += packets;
    batch->bytes = (size_t)end;
    batch->socket_id = viewer->socket_id;
    return 0;
}

/* Sends the batch's messages on its socket; each viewer's outcome is set. */
static void
send_batch(const Batch *batch)
{
    int fd = pending[0].viewer->fd;
    for (Py_ssize_t index = 0; index < batch->messages; index++)
        batch_vectors[index].iov_base = batch_bytes + message_offset[index];
    Py_ssize_t at = 0;
    while (at < batch->messages) {
        int sent = sendmmsg(fd, batch_messages + at, (unsigned int)(batch->messages - at), 0);
        if (sent > 0) {
            at += sent;
            continue;
        }
        int error = errno;
        Pending *owner = &pending[message_owner[at]];
        if (would_block(error)) {
            for (; at < batch->messages; at++) /* the socket is full: the rest dropped */
                pending[message_owner[at]].outcome = FULL;
            return;
        }
        if (segmentation_refused(error) && batch_messages[at].msg_hdr.msg_control != NULL) {
            owner->outcome = RESEND;
            owner->resend_from = at;
        } else {
            owner->outcome = FAILED;
            owner->viewer->error = error;
        }
        at = owner->first_message + owner->messages;
    }
}

/* A viewer's part is sent: what its reports and NACK answers need to know. */
static void
count_sent(ViewerState *viewer, const SharedFrame *frame, const Pending *entry)
{
    viewer->awaiting_keyframe = 0;
    viewer->serials[viewer->history_next] = frame->serial;
    viewer->firsts[viewer->history_next] = (uint16_t)entry->first_sequence;
    viewer->history_next = (viewer->history_next + 1) % HISTORY;
    if (viewer->history_count < HISTORY)
        viewer->history_count++;
    viewer->packets += (unsigned long long)entry->packets;
    viewer->octets += (unsigned long long)frame->octets;
    viewer->wire_packets += (unsigned long long)entry->packets;
    viewer->wire_octets += (unsigned long long)entry->bytes;
    viewer->ntp = frame->ntp;
    viewer->rtp_timestamp = entry->timestamp;
}

/* Sends the batch and settles every viewer in it; those whose send failed go to
 * `failed`. Returns -1 on a Python error. */
static int
flush_batch(Batch *batch, const SharedFrame *frame, PyObject *failed)
{
    if (batch->viewers == 0)
        return 0;
    send_batch(batch);
    int result = 0;
    for (Py_ssize_t index = 0; index < batch->viewers; index++) {
        Pending *entry = &pending[index];
        ViewerState *viewer = entry->viewer;
        if (entry->outcome == RESEND) { /* the kernel refused segmentation: one by one */
            Py_ssize_t from = message_first_length[entry->resend_from];
            viewer->segmented = 0;
            int flags = send_datagrams(
                viewer->fd, (struct sockaddr *)&viewer->address, viewer->address_size,
                batch_bytes + message_offset[entry->resend_from], batch_lengths + from,
                message_first_length[entry->first_message] + entry->packets - from,
                &viewer->segmented);
            if (flags < 0)
                viewer->error = errno;
            entry->outcome = flags < 0 ? FAILED : (flags & SEND_FULL) ? FULL : SENT;
        }
        if (entry->outcome == SENT)
            count_sent(viewer, frame, entry);
        else if (entry->outcome == FULL)
            viewer->awaiting_keyframe = 1; /* behind: the rest of this GOP is not sent */
        else if (result == 0 && PyList_Append(failed, (PyObject *)viewer) < 0)
            result = -1;
    }
    *batch = (Batch){0};
    return result;
}

/* fan_out(viewers, frame) -> [the viewers whose send failed]
 * Sends a shared frame, (serial, ticks, keyframe, ntp, octets, bodies, ends), to every
 * viewer (`ends`: its last packet ends the video frame and carries the marker bit; a
 * paced frame leaves in several calls). A viewer whose socket is full waits for the next keyframe; one whose send
 * failed (see its `error`) is skipped from then on and listed. */
static PyObject *
sendpath_fan_out(PyObject *module, PyObject *args)
{
    PyObject *viewers;
    SharedFrame frame;
    if (!PyArg_ParseTuple(args, "O!(KKpKnO!p);a frame", &PyList_Type, &viewers,
                          &frame.serial, &frame.ticks, &frame.keyframe, &frame.ntp,
                          &frame.octets, &PyList_Type, &frame.bodies, &frame.ends))
        return NULL;
    Py_ssize_t packets = PyList_GET_SIZE(frame.bodies), room = 0;
    if (packets < 1) {
        PyErr_SetString(PyExc_ValueError, "a frame has at least one packet");
        return NULL;
    }
    if (packets > MAX_BATCH_MESSAGES) {
        PyErr_SetString(PyExc_ValueError, "a frame has at most 1024 packets");
        return NULL;
    }
    for (Py_ssize_t body = 0; body < packets; body++) {
        PyObject *item = PyList_GET_ITEM(frame.bodies, body);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "bodies must be bytes");
            return NULL;
        }
        room += PyBytes_GET_SIZE(item) + RTP_HEADER_SIZE + MAX_TRAILER;
    }
    PyObject *failed = PyList_New(0);
    if (failed == NULL)
        return NULL;
    Batch batch = {0};
    Py_ssize_t viewer_count = PyList_GET_SIZE(viewers);
    for (Py_ssize_t index = 0; index < viewer_count; index++) {
        PyObject *item = PyList_GET_ITEM(viewers, index);
        if (!PyObject_TypeCheck(item, &ViewerStateType)) {
            PyErr_SetString(PyExc_TypeError, "viewers must be ViewerState");
            goto error;
        }
        ViewerState *viewer = (ViewerState *)item;
        if (viewer->error || (viewer->awaiting_keyframe && !frame.keyframe))
            continue;
        int full = batch.bytes + (size_t)room > BATCH_BYTES ||
                   batch.messages + packets > MAX_BATCH_MESSAGES;
        if (batch.viewers && (full || viewer->socket_id != batch.socket_id) &&
            flush_batch(&batch, &frame, failed) < 0)
            goto error;
        if (reserve_batch(&batch, (size_t)room, packets) < 0) {
            PyErr_NoMemory();
            goto error;
        }
        int result = gather_viewer(&batch, viewer, &frame);
        if (result < 0 || (result > 0 && PyList_Append(failed, item) < 0))
            goto error;
    }
    if (flush_batch(&batch, &frame, failed) < 0)
        goto error;
    return failed;
error:
    if (batch.viewers) { /* whatever was gathered is still sent */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        flush_batch(&batch, &frame, failed);
        PyErr_Restore(type, value, traceback);
    }
    Py_DECREF(failed);
    return NULL;
}

static void
put32(unsigned char *at, unsigned long value)
{
    at[0] = (value >> 24) & 0xFF;
    at[1] = (value >> 16) & 0xFF;
    at[2] = (value >> 8) & 0xFF;
    at[3] = value & 0xFF;
}

/* One viewer's sender report (RFC 3550 6.4.1) and SDES CNAME in one compound SRTCP
 * packet: 0 sent (or its socket was full), 1 failed (its error is set). */
static int
report_to_viewer(ViewerState *viewer)
{
    unsigned char packet[28 + 8 + 2 + MAX_CNAME + 4 + MAX_TRAILER + 4];
    packet[0] = 0x80; /* version 2, no reception report blocks */
    packet[1] = 200;  /* SR */
    packet[2] = 0;
    packet[3] = 6; /* 7 words */
    put32(packet + 4, viewer->ssrc);
    put32(packet + 8, (unsigned long)(viewer->ntp >> 32));
    put32(packet + 12, (unsigned long)(viewer->ntp & 0xFFFFFFFF));
    put32(packet + 16, viewer->rtp_timestamp);
    put32(packet + 20, (unsigned long)(viewer->packets & 0xFFFFFFFF));
    put32(packet + 24, (unsigned long)(viewer->octets & 0xFFFFFFFF));
    /* SDES: one chunk, the CNAME item then at least one null octet to a word boundary */
    unsigned char *sdes = packet + 28;
    int chunk = 4 + 2 + viewer->cname_size + 1;
    chunk += (4 - chunk % 4) % 4;
    memset(sdes, 0, 4 + chunk);
    sdes[0] = 0x81; /* one chunk */
    sdes[1] = 202;  /* SDES */
    sdes[2] = 0;
    sdes[3] = (unsigned char)(chunk / 4);
    put32(sdes + 4, viewer->ssrc);
    sdes[8] = 1; /* CNAME */
    sdes[9] = (unsigned char)viewer->cname_size;
    memcpy(sdes + 10, viewer->cname, viewer->cname_size);
    int length = 28 + 4 + chunk;
    int status = viewer->protect_rtcp(viewer->context, packet, &length);
    if (status != 0) {
        viewer->error = status;
        viewer->srtp_error = 1;
        return 1;
    }
    int sent = send_one(viewer->fd, packet, (size_t)length, (struct sockaddr *)&viewer->address,
                        viewer->address_size);
    if (sent < 0) {
        viewer->error = errno;
        return 1;
    }
    return 0;
}

/* report(viewers) -> [the viewers whose report failed]
 * A sender report with its CNAME to every viewer that has been sent something. */
static PyObject *
sendpath_report(PyObject *module, PyObject *args)
{
    PyObject *viewers;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &viewers))
        return NULL;
    PyObject *failed = PyList_New(0);
    if (failed == NULL)
        return NULL;
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(viewers); index++) {
        PyObject *item = PyList_GET_ITEM(viewers, index);
        if (!PyObject_TypeCheck(item, &ViewerStateType)) {
            PyErr_SetString(PyExc_TypeError, "viewers must be ViewerState");
            Py_DECREF(failed);
            return NULL;
        }
        ViewerState *viewer = (ViewerState *)item;
        if (viewer->error || viewer->ntp == 0)
            continue;
        if (report_to_viewer(viewer) && PyList_Append(failed, item) < 0) {
            Py_DECREF(failed);
            return NULL;
        }
    }
    return failed;
}

static PyMethodDef sendpath_methods[] = {
    {"protect", (PyCFunction)(void (*)(void))sendpath_protect, METH_VARARGS | METH_KEYWORDS,
     "protect(*, srtp, buffer, offset, first_byte, payload_type, ssrc, sequence, timestamp, "
     "bodies, marker_index, sizes): SRTP-protect a frame's packets in place."},
    {"send", sendpath_send, METH_VARARGS, "Send datagrams laid end to end, segmented."},
    {"sockaddr", sendpath_sockaddr, METH_VARARGS, "The socket address of a numeric host."},
    {"fan_out", sendpath_fan_out, METH_VARARGS, "Send a shared frame to many viewers."},
    {"report", sendpath_report, METH_VARARGS, "Send every viewer its sender report."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sendpath_module = {
    PyModuleDef_HEAD_INIT,
    "signaling.rtp._sendpath",
    "The WebRTC fan-out's per-viewer protect and send, in C.",
    -1,
    sendpath_methods,
};

PyMODINIT_FUNC
PyInit__sendpath(void)
{
    if (PyType_Ready(&ViewerStateType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&sendpath_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&ViewerStateType);
    if (PyModule_AddObject(module, "ViewerState", (PyObject *)&ViewerStateType) < 0) {
        Py_DECREF(&ViewerStateType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SEND_FULL", SEND_FULL) < 0 ||
        PyModule_AddIntConstant(module, "SEND_UNSEGMENTED", SEND_UNSEGMENTED) < 0 ||
        PyModule_AddIntConstant(module, "MAX_SEGMENTS", MAX_SEGMENTS) < 0 ||
        PyModule_AddIntConstant(module, "HISTORY", HISTORY) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
