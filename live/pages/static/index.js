// The front page (/): sessions live now, coming up and ended (to replay), each a link
// to its viewer page with its latest picture.

import { api, el } from "/assets/common.js";

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function showView(show) {
  const id = encodeURIComponent(show.id);
  const picture = el("img", { src: `/api/live-sessions/${id}/thumbnail.jpg`, alt: "" });
  picture.addEventListener("error", () => {
    picture.replaceWith(el("span", { className: "no-picture" })); // nothing streamed yet
  });
  const time = show.status === "scheduled"
    ? show.scheduled_at : show.started_at ?? show.scheduled_at;
  return el("li", {}, [
    el("a", { href: `/live/${id}` }, [
      picture, el("span", { className: "name", text: show.title }),
      el("span", { className: "meta", text: when.format(new Date(time)) }),
    ]),
  ]);
}

async function fill(list) {
  try {
    const page = await api("GET", `/api/live-sessions?status=${list.dataset.status}&limit=24`);
    const items = page.items.map(showView);
    list.replaceChildren(...(items.length ? items : [el("li", { text: list.dataset.empty })]));
  } catch (error) {
    list.replaceChildren(el("li", { className: "error", text: error.message }));
  }
}

for (const list of document.querySelectorAll(".shows")) fill(list);
