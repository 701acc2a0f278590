// The study page: one rater's session. Each exposure is timed by animation frames: the images appear in the
// frame whose callback shows them and are gone from the frame whose callback hides them, and the time between
// those two frames is the exposure sent with the answer. The page's state is in body[data-state].
"use strict";

(() => {
  const FIXATION_MS = 500;
  const FEEDBACK_MS = 1000;
  const RATER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/; // as the server checks it
  const KEYS = { f: "left", arrowleft: "left", j: "right", arrowright: "right" };
  const byId = (id) => document.getElementById(id);
  const setState = (name) => { document.body.dataset.state = name; };
  const tenths = (ms) => Math.round(ms * 10) / 10; // browsers' clocks are coarser than that
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function api(path, body) {
    // Network failures and server errors are retried (an answer sent twice is stored once); refusals are not.
    for (let attempt = 0; ; attempt += 1) {
      let response = null;
      try {
        response = await fetch(path, body === undefined ? { cache: "no-store" } : {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
      } catch (err) {
        response = null;
      }
      if (response && response.ok) {
        if (attempt > 0) byId("feedback").textContent = "";
        return response.json();
      }
      if (response && response.status < 500) {
        const reply = await response.json().catch(() => ({}));
        throw new Error(typeof reply.detail === "string" ? reply.detail : `${response.status} ${response.statusText}`);
      }
      byId("feedback").textContent =
        "The connection to the study server is lost; retrying. Your answers so far are saved.";
      await sleep(Math.min(8000, 500 * 2 ** attempt));
    }
  }

  function raterId(study) {
    // Given in the URL (?rater=NAME), or made once per browser and kept for this study.
    const given = new URLSearchParams(window.location.search).get("rater");
    if (given !== null) {
      if (!RATER.test(given)) {
        throw new Error("The rater id in the address (?rater=...) must be 1 to 64 letters, digits, _ . or -, " +
          "starting with a letter or digit.");
      }
      return given;
    }
    const key = `pix2pix-study:${study}`;
    let id = null;
    try { id = window.localStorage.getItem(key); } catch (err) { id = null; }
    if (!id) {
      const bytes = window.crypto.getRandomValues(new Uint8Array(12));
      id = `r${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
      try { window.localStorage.setItem(key, id); } catch (err) { /* private mode: this visit only */ }
    }
    return id;
  }

  function showMessage(title, paragraphs, button) {
    setState(button ? "message" : "done");
    byId("trial").hidden = true;
    byId("message").hidden = false;
    byId("title").textContent = title;
    byId("text").replaceChildren(...paragraphs.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }));
    const go = byId("go");
    go.hidden = !button;
    if (!button) return Promise.resolve();
    go.textContent = button;
    go.focus();
    return new Promise((resolve) => go.addEventListener("click", () => {
      setState("loading");  // at once: the next images may take a while, and the message is gone
      go.hidden = true;
      byId("message").hidden = true;
      byId("trial").hidden = false;
      resolve();
    }, { once: true }));
  }

  function expose(ms) {
    // Shown from the frame of the first callback until the first frame at least `ms` later (to half a frame).
    return new Promise((resolve) => {
      let shown = null;
      let last = null;
      function frame(now) {
        if (shown === null) {
          setState("showing");
          shown = now;
        } else if (now - shown >= ms - (now - last) / 2) {
          setState("question");
          resolve({ exposure: now - shown, hiddenAt: now });
          return;
        }
        last = now;
        window.requestAnimationFrame(frame);
      }
      window.requestAnimationFrame(frame);
    });
  }

  function answer() {
    // The first click on an image's place or key press of F/J (or the arrows): the side taken for the fake.
    return new Promise((resolve) => {
      const left = byId("left");
      const right = byId("right");
      const done = (side, event) => {
        document.removeEventListener("keydown", onKey);
        left.removeEventListener("click", onLeft);
        right.removeEventListener("click", onRight);
        if (document.activeElement) document.activeElement.blur();
        resolve({ side, at: event.timeStamp });
      };
      const onKey = (event) => {
        const side = KEYS[event.key.toLowerCase()];
        if (side && !event.repeat) {
          event.preventDefault();
          done(side, event);
        }
      };
      const onLeft = (event) => done("left", event);
      const onRight = (event) => done("right", event);
      document.addEventListener("keydown", onKey);
      left.addEventListener("click", onLeft);
      right.addEventListener("click", onRight);
    });
  }

  async function runTrial(rater, session, trial) {
    const practice = trial.phase === "practice";
    setState("loading");
    byId("progress").textContent = practice
      ? `Practice ${trial.trial + 1} of ${session.practice}`
      : `Trial ${trial.trial - session.practice + 1} of ${session.test}`;
    byId("feedback").textContent = "";
    byId("feedback").className = "";
    const images = [byId("left-img"), byId("right-img")];
    images[0].src = trial.left;
    images[1].src = trial.right;
    await Promise.all(images.map((image) => image.decode()));
    setState("fixation");
    await sleep(FIXATION_MS);
    const { exposure, hiddenAt } = await expose(session.exposure_ms);
    const { side, at } = await answer();
    setState("sending");
    const reply = await api("api/answer", {
      rater,
      trial: trial.trial,
      answer: side,
      exposure_ms: tenths(exposure),
      reaction_ms: tenths(Math.max(0, at - hiddenAt)),
    });
    if ("correct" in reply) {
      setState("feedback");
      byId("feedback").className = reply.correct ? "correct" : "wrong";
      byId("feedback").textContent = reply.correct
        ? `Correct: the ${reply.fake_side} image was fake.`
        : `Wrong: the fake was the ${reply.fake_side} image.`;
      await sleep(FEEDBACK_MS);
    }
  }

  function introduction(session) {
    const seconds = session.exposure_ms / 1000;
    return [
      "Each trial shows two images side by side for " + `${seconds} second${seconds === 1 ? "" : "s"}: ` +
        "one is a real photograph, the other was made by a computer. Then both disappear.",
      "Take as long as you like to say which one was fake: click where it was, or press F for the left and J " +
        "for the right one (the arrow keys work too).",
      session.practice
        ? `The first ${session.practice} trials are practice and tell you whether you were right; ` +
          `the ${session.test} after them do not.`
        : `There are ${session.test} trials, without feedback.`,
      "Keep your eyes on the + in the middle before each trial.",
    ];
  }

  async function main() {
    const { study } = await api("api/study");
    const rater = raterId(study);
    const session = await api("api/session", { rater });
    if (session.done) {
      await showMessage("Thank you", ["You have completed this study already; each person takes part once."]);
      return;
    }
    for (const image of [byId("left-img"), byId("right-img")]) {
      image.width = session.size;
      image.height = session.size;
    }
    if (session.answered === 0) {
      await showMessage("Real or fake?", introduction(session), session.practice ? "Start the practice" : "Start");
    } else if (session.answered !== session.practice) {
      await showMessage("Welcome back", [`You continue where you left off, at trial ${session.answered + 1} of ` +
        `${session.trials.length}.`], "Continue");
    }
    for (const trial of session.trials.slice(session.answered)) {
      if (trial.trial === session.practice && session.practice > 0) {
        await showMessage("Practice over", ["From now on you will not be told whether you were right. The " +
          "images are shown as before."], "Start");
      }
      await runTrial(rater, session, trial);
    }
    await showMessage("Thank you", ["You have finished the study. You may close this page."]);
  }

  main().catch((err) => showMessage("Something went wrong", [String(err.message || err),
    "Reload the page to continue where you left off."]));
})();
