/* The per-viewer send path of the WebRTC fan-out in C: SRTP-protecting a frame's packets
 * in place and sending them with as few system calls as possible.
 *
 * Same behaviour as the pure-Python path in signaling/srtp_frames.py and
 * signaling/datagrams.py (used where this module was not built); per packet that path
 * spends most of its time in the interpreter, not in libsrtp or the kernel. libsrtp
 * itself is pylibsrtp's: its srtp_protect and the session's context arrive as addresses,
 * so no second copy of libsrtp is linked here. Linux only (UDP segmentation offload).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define RTP_HEADER_SIZE 12
#define MARKER_BIT 0x80
#define PADDING_BIT 0x20
#define MAX_PADDING 255
#define MAX_SEGMENTS 32

#define SEND_FULL 1           /* the socket could not take it all: the rest was dropped */
#define SEND_UNSEGMENTED 2    /* segmentation offload was refused: sent one by one */

typedef int (*srtp_protect_fn)(void *context, void *packet, int *length);

/* protect(protect_fn, context, buffer, offset, first_byte, payload_type, ssrc, sequence,
 *         timestamp, bodies, marker_index, padded_size, sizes) -> new offset
 * Each body behind its RTP header, protected, from `offset` on; sizes appended to
 * `sizes`. A negative result is -(libsrtp status): nothing of this call counts. */
static PyObject *
sendpath_protect(PyObject *module, PyObject *args)
{
    unsigned long long protect_address, context_address;
    Py_buffer buffer;
    Py_ssize_t offset, marker_index, padded_size;
    int first_byte, payload_type;
    unsigned long ssrc, sequence, timestamp;
    PyObject *bodies, *sizes;

    if (!PyArg_ParseTuple(args, "KKw*niikkkO!nnO!", &protect_address, &context_address,
                          &buffer, &offset, &first_byte, &payload_type, &ssrc, &sequence,
                          &timestamp, &PyList_Type, &bodies, &marker_index, &padded_size,
                          &PyList_Type, &sizes))
        return NULL;

    srtp_protect_fn protect = (srtp_protect_fn)(uintptr_t)protect_address;
    void *context = (void *)(uintptr_t)context_address;
    unsigned char *base = buffer.buf;
    Py_ssize_t capacity = buffer.len, count = PyList_GET_SIZE(bodies);
    Py_ssize_t sizes_before = PyList_GET_SIZE(sizes);
    PyObject *result = NULL;

    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *body = PyList_GET_ITEM(bodies, index);
        if (!PyBytes_Check(body)) {
            PyErr_SetString(PyExc_TypeError, "bodies must be bytes");
            goto done;
        }
        Py_ssize_t body_size = PyBytes_GET_SIZE(body);
        Py_ssize_t size = RTP_HEADER_SIZE + body_size, padding = 0;
        if (padded_size > size) {
            padding = padded_size - size < MAX_PADDING ? padded_size - size : MAX_PADDING;
        }
        /* room for the packet, its padding and the SRTP tag (at most 144 bytes) */
        if (offset < 0 || offset + size + padding + 144 > capacity) {
            PyErr_SetString(PyExc_ValueError, "the buffer has no room for the packet");
            goto done;
        }
        unsigned char *packet = base + offset;
        uint16_t number = (uint16_t)((sequence + index) & 0xFFFF);
        packet[0] = (unsigned char)(first_byte | (padding ? PADDING_BIT : 0));
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
        if (padding) {
            memset(packet + size, 0, padding - 1);
            packet[size + padding - 1] = (unsigned char)padding;
        }
        int length = (int)(size + padding);
        int status = protect(context, packet, &length);
        if (status != 0) {
            if (PyList_SetSlice(sizes, sizes_before, PyList_GET_SIZE(sizes), NULL) == 0)
                result = PyLong_FromLong(-status);
            goto done;
        }
        PyObject *protected_size = PyLong_FromLong(length);
        if (protected_size == NULL || PyList_Append(sizes, protected_size) < 0) {
            Py_XDECREF(protected_size);
            goto done;
        }
        Py_DECREF(protected_size);
        offset += length;
    }
    result = PyLong_FromSsize_t(offset);
done:
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

/* send(fd, address, data, sizes, segmented) -> flags
 * The datagrams laid end to end in `data`, of `sizes`, in order, to the sockaddr
 * `address`: runs of equal size (the last of a run may be shorter) in one segmented
 * call each, unless `segmented` is false. Flags: SEND_FULL (the rest was dropped),
 * SEND_UNSEGMENTED (the kernel refused segmentation; from then on one by one). */
static PyObject *
sendpath_send(PyObject *module, PyObject *args)
{
    int fd, segmented;
    Py_buffer address, data;
    PyObject *sizes;
    if (!PyArg_ParseTuple(args, "iy*y*O!p", &fd, &address, &data, &PyList_Type, &sizes,
                          &segmented))
        return NULL;

    const struct sockaddr *to = address.buf;
    socklen_t to_size = (socklen_t)address.len;
    unsigned char *base = data.buf;
    Py_ssize_t count = PyList_GET_SIZE(sizes), start = 0, offset = 0;
    size_t *lengths = PyMem_Malloc(sizeof(size_t) * (count ? count : 1));
    int flags = 0, status = 0;
    PyObject *result = NULL;
    if (lengths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t total = 0;
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
    while (start < count && status == 0) {
        size_t segment = lengths[start];
        Py_ssize_t end = start + 1;
        if (segmented) {
            Py_ssize_t limit = count < start + MAX_SEGMENTS ? count : start + MAX_SEGMENTS;
            while (end < limit && lengths[end] == segment)
                end++;
            if (end < limit && lengths[end] < segment)
                end++;
        }
        size_t run = segment * (size_t)(end - start - 1) + lengths[end - 1];
        if (end - start == 1) {
            status = send_one(fd, base + offset, run, to, to_size);
        } else {
            status = send_run(fd, base + offset, run, (uint16_t)segment, to, to_size);
            if (status < 0 && segmentation_refused(errno)) {
                segmented = 0;
                flags |= SEND_UNSEGMENTED;
                status = 0;
                continue; /* this run again, one datagram at a time */
            }
        }
        start = end;
        offset += (Py_ssize_t)run;
    }
    if (status < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = PyLong_FromLong(flags | status);
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

static PyMethodDef sendpath_methods[] = {
    {"protect", sendpath_protect, METH_VARARGS, "SRTP-protect a frame's packets in place."},
    {"send", sendpath_send, METH_VARARGS, "Send datagrams laid end to end, segmented."},
    {"sockaddr", sendpath_sockaddr, METH_VARARGS, "The socket address of a numeric host."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sendpath_module = {
    PyModuleDef_HEAD_INIT,
    "signaling._sendpath",
    "The WebRTC fan-out's per-viewer protect and send, in C.",
    -1,
    sendpath_methods,
};

PyMODINIT_FUNC
PyInit__sendpath(void)
{
    PyObject *module = PyModule_Create(&sendpath_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddIntConstant(module, "SEND_FULL", SEND_FULL) < 0 ||
        PyModule_AddIntConstant(module, "SEND_UNSEGMENTED", SEND_UNSEGMENTED) < 0 ||
        PyModule_AddIntConstant(module, "MAX_SEGMENTS", MAX_SEGMENTS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
