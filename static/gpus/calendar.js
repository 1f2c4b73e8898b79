/* The GPU calendar (gpus/templates/gpus/calendar.html): FullCalendar 7 over the JSON
   endpoints of gpus/views.py. Times travel as ISO 8601 strings with the team's offset, which
   the server computes; FullCalendar shows them in the team's time zone (config.timeZone). */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("calendar-config").textContent);
  const el = document.getElementById("calendar");
  const status = document.getElementById("cal-status");
  const bookDialog = document.getElementById("book-dialog");
  const bookingDialog = document.getElementById("booking-dialog");
  const narrow = window.matchMedia("(max-width: 760px)");
  const hidden = new Set();  // GPU indexes switched off with the chips
  let highlighted = null;     // id of the booking a refusal named
  let selection = null;       // {start, end} of the slot being booked
  let current = null;         // the booking the details dialog shows

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  function url(name, id) { return config.urls[name].replace("/0/", "/" + id + "/"); }

  /* The endpoints answer JSON; anything else is the login page (the session ended) or
     Django's CSRF refusal (the page is older than the session). */
  function readJson(response) {
    const type = response.headers.get("Content-Type") || "";
    if (type.indexOf("application/json") === 0) return response.json();
    return Promise.resolve({
      error: "Your session has ended or this page is out of date: reload the page (and sign in again) and retry.",
      rule: "session",
    }).then(function (body) { return response.ok ? Promise.reject({ status: response.status, body: body }) : body; });
  }

  /* POST JSON; resolves with the body, rejects with {status, body}. */
  function post(target, data) {
    return fetch(target, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(data || {}),
    }).then(function (response) {
      return readJson(response)
        .then(function (body) { return response.ok ? body : Promise.reject({ status: response.status, body: body }); });
    }, function () {
      return Promise.reject({ status: 0, body: { error: "The portal did not answer; check your connection and try again." } });
    });
  }

  /* The page's live region: what happened, in words. */
  function say(text, kind) {
    status.innerHTML = "";
    if (!text) return;
    const p = document.createElement("p");
    p.className = "msg " + (kind === "error" ? "msg-error" : "msg-success");
    p.textContent = text;
    if (kind === "error") p.setAttribute("role", "alert");
    status.appendChild(p);
  }

  function explain(failure) {
    const body = failure.body || {};
    let text = body.error || "That did not work.";
    highlighted = null;
    if (body.rule === "conflict" && body.conflicting) {
      const other = body.conflicting;
      highlighted = other.id;
      text += " It is outlined in red on the calendar.";
      const inView = calendar.view.activeStart <= new Date(other.start) && new Date(other.start) < calendar.view.activeEnd;
      if (!inView) calendar.gotoDate(other.start);
    }
    calendar.refetchEvents();
    return text;
  }

  function text(className, content) {
    const node = document.createElement("div");
    node.className = className;
    node.textContent = content;
    return node;
  }

  function gpuText(indexes) {
    return indexes.map(function (i) { return "GPU " + i; }).join(", ");
  }

  function eventNodes(arg) {
    const props = arg.event.extendedProps;
    if (props.gpu === undefined) return { domNodes: [text("ev-title", "New booking"), text("ev-meta", arg.timeText)] };
    const title = document.createElement("div");
    title.className = "ev-title";
    title.textContent = "GPU " + props.gpu + " · " + (props.own ? props.member + " (you)" : props.member);
    const nodes = [title];
    const meta = document.createElement("div");
    meta.className = "ev-meta";
    meta.textContent = arg.timeText + (props.shared ? " · shared" : "") + (props.state === "active" ? " · under way" : "");
    nodes.push(meta);
    if (props.note) {
      const note = document.createElement("div");
      note.className = "ev-note";
      note.textContent = props.note;
      nodes.push(note);
    }
    return { domNodes: nodes };
  }

  /* Each GPU keeps its own lane (GPU 0 leftmost) while there are few enough to read:
     FullCalendar only splits a day between events that overlap. */
  const MAX_LANES = 4;
  function laneClass(props) {
    const shown = config.gpus.map(function (g) { return g.index; }).filter(function (i) { return !hidden.has(i); });
    if (props.shared || shown.length < 2 || shown.length > MAX_LANES) return "";
    return "gpu-lane-" + shown.length + "-" + shown.indexOf(props.gpu);
  }

  (function laneRules() {
    const css = [];
    for (let n = 2; n <= MAX_LANES; n++) {
      for (let i = 0; i < n; i++) {
        const left = (100 * i / n).toFixed(3), right = (100 * (n - 1 - i) / n).toFixed(3);
        css.push(".calendar div:has(> .gpu-lane-" + n + "-" + i + ") { inset-inline: " + left + "% " + right + "% !important; }");
      }
    }
    const style = document.createElement("style");
    style.textContent = css.join("\n");
    document.head.appendChild(style);
  })();

  // The portal's way of writing times ("Thu 3 Dec 18:00"), in the team's zone.
  const moment = new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: config.timeZone });
  const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: config.timeZone });
  const day = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: config.timeZone });
  const dayHeader = new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: config.timeZone });

  function eventClass(arg) {
    const props = arg.event.extendedProps;
    return [
      laneClass(props),
      props.booking === highlighted ? "gpu-ev-conflict" : "",
      props.mayChange ? "gpu-ev-editable" : "",
      arg.isPast ? "gpu-ev-past" : "",
    ].join(" ");
  }

  function fetchEvents(info) {
    const params = new URLSearchParams({ start: info.startStr, end: info.endStr, host: String(config.host) });
    return fetch(config.urls.events + "?" + params.toString(), {
      credentials: "same-origin", headers: { "Accept": "application/json" },
    }).then(function (response) {
      return readJson(response).then(function (body) {
        if (!response.ok) throw new Error(body.error || "The bookings could not be loaded.");
        el.dataset.loading = "false";
        return body.filter(function (event) { return !hidden.has(event.extendedProps.gpu); });
      });
    }).catch(function (error) {
      const message = (error.body && error.body.error) || error.message;
      say(message || "The bookings could not be loaded; reload the page.", "error");
      throw error;
    });
  }

  /* A move or resize: ask the server, put it back if refused. */
  function changed(info) {
    const props = info.event.extendedProps;
    post(url("change", props.booking), { start: info.event.startStr, end: info.event.endStr })
      .then(function (body) { highlighted = null; say(body.message); refresh(); })
      .catch(function (failure) { info.revert(); say(explain(failure), "error"); });
  }

  function openBooking(info) {
    const props = info.event.extendedProps;
    current = props;
    const slots = bookingDialog.querySelectorAll("[data-slot]");
    const values = {
      id: String(props.booking),
      member: props.own ? props.member + " (you)" : props.member,
      gpus: gpuText(props.gpus) + (props.shared ? " · shared" : " · exclusive"),
      span: props.span + " (" + props.hours + ")",
      state: props.stateLabel,
      note: props.note || "—",
    };
    slots.forEach(function (node) { node.textContent = values[node.dataset.slot]; });
    const may = props.mayChange;
    bookingDialog.querySelector('[data-act="release"]').hidden = !(may && props.started);
    bookingDialog.querySelector('[data-act="extend"]').hidden = !may;
    bookingDialog.querySelector('[data-act="cancel"]').hidden = !(may && !props.started);
    dialogError(bookingDialog, "");
    bookingDialog.showModal();
  }

  function dialogError(dialog, text) {
    const box = dialog.querySelector(".dlg-error");
    box.textContent = text;
    box.hidden = !text;
  }

  /* After a change: the events, and the page's own lists (your bookings, hours this week). */
  function refresh() {
    calendar.refetchEvents();
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(); })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        ["my-bookings", "week-used"].forEach(function (id) {
          const now = document.getElementById(id), next = fresh.getElementById(id);
          if (now && next) now.innerHTML = next.innerHTML;
        });
      })
      .catch(function () { /* the lists catch up on the next reload */ });
  }

  /* A refusal in the open dialog and in the page's alert region (which stays after it closes). */
  function refused(dialog, failure) {
    const message = explain(failure);
    dialogError(dialog, message);
    say(message, "error");
  }

  function act(name) {
    post(url(name, current.booking), {})
      .then(function (body) { bookingDialog.close(); highlighted = null; say(body.message); refresh(); })
      .catch(function (failure) { refused(bookingDialog, failure); });
  }

  function select(info) {
    selection = { start: info.startStr, end: info.endStr };
    const first = info.start, last = info.end;
    const sameDay = day.format(first) === day.format(new Date(last - 1));
    bookDialog.querySelector('[data-slot="span"]').textContent =
      moment.format(first) + "–" + (sameDay ? clock.format(last) : moment.format(last));
    dialogError(bookDialog, "");
    bookDialog.showModal();
  }

  function book(event) {
    event.preventDefault();
    const form = document.getElementById("book-dialog-form");
    const choice = form.elements.gpus.value.split(":");
    const data = { host: config.host, start: selection.start, end: selection.end, note: form.elements.note.value };
    if (choice[0] === "i") data.gpus = [parseInt(choice[1], 10)];
    else data.count = parseInt(choice[1], 10);
    data.shared = Boolean(form.elements.mode && form.elements.mode.value === "shared");
    post(config.urls.create, data)
      .then(function (body) {
        bookDialog.close(); calendar.unselect(); form.reset(); highlighted = null;
        say(body.message); refresh();
      })
      .catch(function (failure) { refused(bookDialog, failure); });
  }

  const calendar = new FullCalendar.Calendar(el, {
    initialView: narrow.matches ? "timeGridDay" : "timeGridWeek",
    timeZone: config.timeZone,
    firstDay: 1,
    nowIndicator: true,
    allDaySlot: false,
    slotDuration: { minutes: config.slotMinutes },
    snapDuration: { minutes: config.slotMinutes },
    scrollTime: "07:00:00",
    height: 780,
    headerToolbar: { start: "prev,today,next", center: "title", end: "timeGridWeek,timeGridDay" },
    buttons: { timeGridWeek: { text: "Week" }, timeGridDay: { text: "Day" }, today: { text: "Today" } },
    slotHeaderFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
    eventTimeFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
    dayHeaderContent: function (arg) { return dayHeader.format(arg.date); },
    selectable: true,
    selectMirror: true,
    unselectAuto: false,
    editable: false,  // each event says whether its viewer may move it
    slotEventOverlap: false,
    eventOrder: "gpu,start",
    eventOrderStrict: true,
    events: fetchEvents,
    eventContent: eventNodes,
    eventClass: eventClass,
    eventClick: openBooking,
    eventDrop: changed,
    eventResize: changed,
    select: select,
    selectAllow: function (span) { return span.end > new Date(Date.now() - config.slotMinutes * 60000); },
  });
  calendar.render();
  window.gpuCalendar = calendar;  // for the browser tests

  narrow.addEventListener("change", function () {
    calendar.changeView(narrow.matches ? "timeGridDay" : "timeGridWeek");
  });

  document.querySelectorAll(".chip[data-gpu]").forEach(function (chip) {
    chip.addEventListener("click", function () {
      const index = parseInt(chip.dataset.gpu, 10);
      const on = chip.getAttribute("aria-pressed") !== "true";
      chip.setAttribute("aria-pressed", String(on));
      if (on) hidden.delete(index); else hidden.add(index);
      calendar.refetchEvents();
    });
  });

  document.getElementById("book-dialog-form").addEventListener("submit", book);
  bookingDialog.querySelectorAll("[data-act]").forEach(function (button) {
    button.addEventListener("click", function () { act(button.dataset.act); });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });
  bookDialog.addEventListener("close", function () { calendar.unselect(); });
})();
