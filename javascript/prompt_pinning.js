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

    var REPORT = /(?:Prompt pinning|Pinning) report: "?([^"\n<]*index\.html)/;

    function linkReport(app) {
        ["txt2img", "img2img"].forEach(function (tab) {
            var info = app.querySelector("#html_info_" + tab);
            if (!info) return;
            var log = app.querySelector("#html_log_" + tab);
            var text = (info.textContent || "") + "\n" + (log ? log.textContent || "" : "");
            var match = REPORT.exec(text);
            var existing = info.querySelector(".prompt-pinning-report");
            if (!match) {
                if (existing) existing.remove();
                return;
            }
            var href = "file=" + match[1].trim();
            if (existing && existing.getAttribute("href") === href) return;
            if (existing) existing.remove();
            var link = document.createElement("a");
            link.className = "prompt-pinning-report";
            link.href = href;
            link.target = "_blank";
            link.rel = "noopener";
            link.textContent = "Open the prompt pinning report";
            link.style.display = "block";
            info.prepend(link);
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
