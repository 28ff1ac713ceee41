"""Sphinx hooks of the course's book (loaded through `sphinx.local_extensions` in _config.yml).

The browser test found that a fresh reader's console shows a script error on every page: the
theme stack (jupyter-book 1.0 with sphinx-thebe) registers its inline Thebe settings twice, and
the second `const THEBE_JS_URL` throws. Every page's script list is de-duplicated here, keeping
the first copy in place.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts:
        # The copies differ only in how "no file" is spelled (None or ""), so compare by content.
        seen, unique = set(), []
        for js in scripts:
            key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
            if key not in seen:
                seen.add(key)
                unique.append(js)
        # In place: later handlers (MathJax's, for one) append to this very list.
        scripts[:] = unique


def setup(app):
    # Early: Sphinx stops calling html-page-context handlers after the first one that returns a value.
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
