// Typeset the maths that pymdownx.arithmatex (generic mode) leaves in the pages:
// <span class="arithmatex">\(...\)</span> inline and <div class="arithmatex">\[...\]</div>
// displayed, with the KaTeX copy shipped in assets/katex (no network needed).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    var tex = element.textContent.trim();
    var display = tex.startsWith("\\[") && tex.endsWith("\\]");
    var inline = tex.startsWith("\\(") && tex.endsWith("\\)");
    if (display || inline) {
      katex.render(tex.slice(2, -2), element, { displayMode: display, throwOnError: false });
    }
  });
});
