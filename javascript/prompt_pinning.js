// Prompt pinning: hover hints for every option, and a link to the finished run's report.
// Everything is guarded: on pages or tabs where the script is absent or not selected
// nothing is looked up that could be missing, so nothing is logged.
(function () {
    "use strict";

    function root() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function applyHints(app) {
        ["txt2img", "img2img"].forEach(function (tab) {
            var holder = app.querySelector("#prompt_pinning_" + tab + "_hints");
            if (!holder || holder.dataset.applied === "1") return;
            var hints;
            try {
                hints = JSON.parse(holder.dataset.hints || "{}");
            } catch (e) {
                return;
            }
            var missing = 0;
            Object.keys(hints).forEach(function (id) {
                var element = app.querySelector("#" + id);
                if (!element) { missing += 1; return; }
                element.title = hints[id];
                element.querySelectorAll("label, span, input, textarea, select").forEach(function (child) {
                    child.title = hints[id];
                });
            });
            if (missing === 0) holder.dataset.applied = "1";
        });
    }

    // The run's comment names the report as the host's file= route resolves it: relative to the
    // WebUI's folder, or absolute (prompt_pinning_webui/links.py). The infotext's "Pinning report"
    // (relative to the outputs folder) is not a served path and is never linked.
    var REPORT = /Prompt pinning report: ([^\n<"]*?index\.html)/;

    function reportHref(path) {
        return "file=" + path.split("/").map(encodeURIComponent).join("/");
    }

    var RESULT = /Prompt pinning result: ([^\n<]*)/;

    // The result line and the report link lead the info box: they are what a person reads first.
    // Both hosts show the run's comments in the log box under it (#html_log_<tab>), not in the info box.
    function linkReport(app) {
        ["txt2img", "img2img"].forEach(function (tab) {
            var info = app.querySelector("#html_info_" + tab);
            if (!info) return;
            var log = app.querySelector("#html_log_" + tab);
            var existing = info.querySelector(".prompt-pinning-header");
            // the log first: the info box holds the user's prompt, which must not pass for a comment
            var text = (log ? log.textContent || "" : "") + "\n" +
                (info.textContent || "").replace(existing ? existing.textContent : "", "");
            var match = REPORT.exec(text);
            var result = RESULT.exec(text);
            if (!match && !result) {
                if (existing) existing.remove();
                return;
            }
            var href = match ? reportHref(match[1].trim()) : "";
            var line = result ? result[1].trim() : "";
            if (existing && existing.dataset.href === href && existing.dataset.line === line) return;
            if (existing) existing.remove();
            var header = document.createElement("p");
            header.className = "prompt-pinning-header";
            header.dataset.href = href;
            header.dataset.line = line;
            header.style.cssText = "margin:0.4em 0;font-size:1.05em";
            if (line) {
                var strong = document.createElement("strong");
                strong.className = "prompt-pinning-result";
                strong.textContent = "Result: " + line;
                header.appendChild(strong);
                header.appendChild(document.createTextNode(" "));
            }
            if (href) {
                var link = document.createElement("a");
                link.className = "prompt-pinning-report";
                link.href = href;
                link.target = "_blank";
                link.rel = "noopener";
                link.textContent = "Open the prompt pinning report";
                link.style.cssText = "font-weight:normal;color:var(--link-text-color, #2563eb);" +
                    "text-decoration:underline;cursor:pointer";
                header.appendChild(link);
            }
            info.prepend(header);
        });
    }

    function update() {
        var app = root();
        if (!app || !app.querySelector) return;
        applyHints(app);
        linkReport(app);
    }

    if (typeof onUiUpdate === "function") {
        onUiUpdate(update);
    } else {
        document.addEventListener("DOMContentLoaded", update);
    }
})();
