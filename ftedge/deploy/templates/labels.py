"""One class name per line, unambiguously: the escaping of the kit's labels files.

Template piece of deploy/infer.py (standard library only). Class names come from folder
names, so they may hold a backslash or characters that some readers take as a line break
(C++ getline splits on '\\n' only, Python's str.splitlines on ten characters). Each such
character is written as a backslash sequence; everything else is kept as is:

    \\  -> \\\\      '\\n' -> \\n      '\\r' -> \\r
    other line breaks (\\x0b \\x0c \\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029) and any extra
    character asked for (';' in DeepStream's file) -> \\uXXXX (4 lowercase hex digits)
"""

# ---- ftedge template body ----

_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def escape_label(name, also=""):
    """`name` on one line: backslash, line breaks and the characters in `also` escaped."""
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch in _LINE_BREAKS or ch in also:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape_label(text):
    """The inverse of escape_label; ValueError on a backslash sequence it never writes."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in ("\\", "n", "r"):
            out.append({"\\": "\\", "n": "\n", "r": "\r"}[nxt])
            i += 2
        elif nxt == "u" and len(text) >= i + 6 and all(c in "0123456789abcdef"
                                                       for c in text[i + 2:i + 6]):
            out.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
        else:
            raise ValueError(f"bad escape at character {i} of label {text!r}")
    return "".join(out)
