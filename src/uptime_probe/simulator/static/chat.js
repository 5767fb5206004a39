// SimChat's front end: the history sidebar, and a message answered as a stream.
//
// No framework, no build step. The API wants a bearer token: a probe's browser sends one
// with every request (a browser step's `headers`); a person opening the page adds it once
// to the address, `/#token=demo-token`, and it is kept for the tab.
"use strict";

(() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("simchatToken", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = sessionStorage.getItem("simchatToken");

  function apiHeaders(extra) {
    const headers = Object.assign({}, extra);
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  }

  const list = document.getElementById("history");
  const historyStatus = document.getElementById("history-status");

  function showHistoryStatus(text, isError) {
    historyStatus.textContent = text;
    historyStatus.className = isError ? "status error" : "status";
    historyStatus.hidden = false;
  }

  async function loadHistory() {
    let response;
    try {
      response = await fetch(list.dataset.source, { headers: apiHeaders() });
    } catch (error) {
      showHistoryStatus("Could not load your chats: the service did not answer.", true);
      return;
    }
    if (!response.ok) {
      const why = response.status === 401 ? "sign in needed" : "HTTP " + response.status;
      showHistoryStatus("Could not load your chats (" + why + ").", true);
      return;
    }
    let body;
    try {
      body = await response.json();
    } catch (error) {
      showHistoryStatus("Could not load your chats: the answer was not readable.", true);
      return;
    }
    const items = Array.isArray(body.items) ? body.items : [];
    list.replaceChildren(
      ...items.map((item) => {
        const entry = document.createElement("li");
        entry.className = "conversation";
        entry.dataset.id = item.id || "";
        entry.textContent = item.title || "Untitled";
        return entry;
      })
    );
    if (items.length) {
      historyStatus.hidden = true;
    } else {
      showHistoryStatus("No conversations yet", false);
    }
  }

  // --- a message, answered as server-sent events: OpenAI-style chunks, then [DONE] ---

  const messages = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const prompt = document.getElementById("prompt");

  function addMessage(role, text) {
    const entry = document.createElement("li");
    entry.className = role;
    entry.textContent = text;
    messages.appendChild(entry);
    return entry;
  }

  // The text a `data:` line adds to the answer: choices[0].delta.content.
  function deltaOf(data) {
    const chunk = JSON.parse(data);
    const choice = chunk && chunk.choices && chunk.choices[0];
    return (choice && choice.delta && choice.delta.content) || "";
  }

  async function send(text) {
    addMessage("user", text);
    const answer = addMessage("assistant streaming", "");
    let response;
    try {
      response = await fetch(composer.dataset.endpoint, {
        method: "POST",
        headers: apiHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ messages: [{ role: "user", content: text }], stream: true }),
      });
    } catch (error) {
      answer.className = "error";
      answer.textContent = "The message could not be sent: the service did not answer.";
      return;
    }
    if (!response.ok || !response.body) {
      answer.className = "error";
      answer.textContent = "The message could not be sent (HTTP " + response.status + ").";
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split(/\r\n|\r|\n/);
      buffered = lines.pop();
      for (const line of lines) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
          answer.className = "assistant done";
          return;
        }
        try {
          answer.textContent += deltaOf(data);
        } catch (error) {
          answer.className = "error";
          answer.textContent += " [the answer broke off: an event was not JSON]";
          return;
        }
      }
    }
    answer.className = "error";
    answer.textContent += " [the answer ended before it was complete]";
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = "";
    send(text);
  });

  loadHistory();
})();
