#!/usr/bin/env python3
"""check_sf_fields.py - every Lead field the code writes exists in sf/ with a compatible type.

Sources compared (standard library only):
  sf/force-app/main/default/objects/<Obj>/fields/*.field-meta.xml   what we deploy
  tests/sfsim/org_schema.c                                          what sfk-sim emulates
  workers/**/*.c, bridge/*.c, cli/*.c                               what the code writes ("X__c")
  DESIGN.md section 2 (when given with --design)                    what the workloads must write

Checks: each custom field named in C sources exists in sf/ and in the sim; sf/ and sim agree
on type, length / precision+scale and picklist values; where the C source builds the value with
a jansson constructor on the same statement (json_object_set_new(o, "X__c", json_real(...))),
the JSON type fits the field type. Exit 1 with one line per problem.
"""
import argparse
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET

MD = "{http://soap.sforce.com/2006/04/metadata}"

# sf type -> sim type(s) it corresponds to
SF_TO_SIM = {
    "DateTime": {"SIM_F_DATETIME"},
    "Date": {"SIM_F_DATE"},
    "Number": {"SIM_F_DOUBLE", "SIM_F_INT"},
    "Percent": {"SIM_F_PERCENT", "SIM_F_DOUBLE"},
    "Currency": {"SIM_F_CURRENCY", "SIM_F_DOUBLE"},
    "Text": {"SIM_F_STRING"},
    "TextArea": {"SIM_F_TEXTAREA", "SIM_F_STRING"},
    "LongTextArea": {"SIM_F_TEXTAREA"},
    "Checkbox": {"SIM_F_BOOLEAN"},
    "Lookup": {"SIM_F_REFERENCE"},
    "Picklist": {"SIM_F_PICKLIST"},
    "Email": {"SIM_F_EMAIL"},
    "Phone": {"SIM_F_PHONE"},
    "Url": {"SIM_F_URL"},
}
# JSON value the C code builds -> sf types that accept it
JSON_OK = {
    "string": {"DateTime", "Date", "Text", "TextArea", "LongTextArea", "Lookup", "Picklist",
               "Email", "Phone", "Url"},
    "real": {"Number", "Percent", "Currency"},
    "integer": {"Number", "Percent", "Currency"},
    "boolean": {"Checkbox"},
    "null": set(SF_TO_SIM),  # clearing a field is always possible (not for Checkbox in SF, see below)
}
JSON_CTOR = {
    "json_string": "string", "json_stringn": "string", "json_sprintf": "string",
    "json_real": "real", "json_integer": "integer",
    "json_true": "boolean", "json_false": "boolean", "json_boolean": "boolean",
    "json_null": "null",
}


def load_sf(root):
    fields = {}
    for path in glob.glob(os.path.join(root, "force-app/main/default/objects/*/fields/*.field-meta.xml")):
        obj = path.split(os.sep)[-3]
        t = ET.parse(path).getroot()
        get = lambda tag: (t.findtext(MD + tag) or "").strip()
        name = get("fullName") or os.path.basename(path).split(".")[0]
        f = {"obj": obj, "type": get("type"), "length": get("length"), "precision": get("precision"),
             "scale": get("scale"), "referenceTo": get("referenceTo"), "description": get("description"),
             "values": [v.findtext(MD + "fullName") for v in t.iter(MD + "value")], "path": path}
        if os.path.basename(path).split(".")[0] != name:
            f["error"] = "fullName %s differs from the file name" % name
        fields[(obj, name)] = f
    return fields


def load_sim(path):
    """Fields of each sim object table: name, type, length, scale, reference, picklist array."""
    src = open(path, encoding="utf-8").read()
    arrays = {m.group(1): re.findall(r'"([^"]*)"', m.group(2))
              for m in re.finditer(r"static const char \*const (\w+)\[\] = \{(.*?)\};", src, re.S)}
    out = {}
    for m in re.finditer(r"static const struct sim_field (\w+)_fields\[\] = \{(.*?)\n\};", src, re.S):
        table = m.group(1)
        for e in re.finditer(r'\{\s*"(\w+)",\s*"[^"]*",\s*(SIM_F_\w+),\s*([^,]+),\s*(\d+),\s*(\d+),\s*'
                             r'(NULL|"[^"]*"),\s*(NULL|"[^"]*"),\s*(NULL|\w+)', m.group(2)):
            name, typ, _flags, length, scale, ref, _rel, pick = e.groups()
            out[(table, name)] = {"type": typ, "length": int(length), "scale": int(scale),
                                  "ref": ref.strip('"') if ref != "NULL" else "",
                                  "values": arrays.get(pick, []) if pick != "NULL" else []}
    return out


def split_call(text, start):
    """Arguments of the call whose '(' is at start: list of argument source texts, end index."""
    args, depth, cur, i = [], 0, [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1]); i = j + 1; continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append("".join(cur).strip()); return args, i
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip()); cur = []; i += 1; continue
        cur.append(ch); i += 1
    return args, i


PACK_TYPE = {"s": "string", "f": "real", "F": "real", "i": "integer", "I": "integer", "b": "boolean",
             "n": "null"}
PACK_NARGS = {"s": 1, "f": 1, "F": 1, "i": 1, "I": 1, "b": 1, "n": 0, "o": 1, "O": 1}


def pack_value_types(fmt, args):
    """json_pack(fmt, args...): {key argument text: JSON type of its value or None}."""
    out, ai, i, stack = {}, 0, 0, []
    fmt = re.sub(r"[\s:,]", lambda m: m.group(0) if m.group(0) == ":" else "", fmt)
    pending_key = None
    while i < len(fmt):
        c = fmt[i]
        if c in "{[":
            stack.append(c)
            if pending_key is not None:
                out[pending_key] = "object" if c == "{" else "array"
                pending_key = None
            i += 1; continue
        if c in "}]":
            stack.pop(); i += 1; continue
        if c == ":":
            i += 1; continue
        n = PACK_NARGS.get(c)
        if n is None:
            i += 1; continue
        mod = fmt[i + 1] if i + 1 < len(fmt) else ""
        if mod in "#%":
            n += 1
        in_obj = stack and stack[-1] == "{"
        is_key = in_obj and pending_key is None and c == "s" and fmt[i + 1:i + 2] == ":"
        if is_key:
            pending_key = args[ai] if ai < len(args) else ""
        elif pending_key is not None:
            out[pending_key] = PACK_TYPE.get(c)
            pending_key = None
        ai += n
        i += 2 if mod in "#%?*" else 1
    return out


def code_writes(src_root):
    """{field: [(file, line, json type or None)]} for every "X__c" literal in C sources."""
    out = {}
    files = []
    for d in ("workers", "bridge", "cli"):
        files += glob.glob(os.path.join(src_root, d, "**", "*.c"), recursive=True)
    for path in sorted(files):
        text = open(path, encoding="utf-8", errors="replace").read()
        packed = {}  # offset of a "X__c" key literal inside json_pack(...) -> value type
        for call in re.finditer(r"\bjson_pack\s*\(", text):
            args, _end = split_call(text, call.end() - 1)
            if not args or not args[0].startswith('"'):
                continue
            fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', args[0]))
            types = pack_value_types(fmt, args[1:])
            pos = call.end()
            for a in args[1:]:
                k = text.find(a, pos)
                if k >= 0:
                    pos = k + len(a)
                    if a in types and re.fullmatch(r'"\w+__c"', a):
                        packed[k] = types[a]
        for m in re.finditer(r'"([A-Za-z][A-Za-z0-9_]*__c)"', text):
            # the statement containing the literal: up to the next ';'
            end = text.find(";", m.end())
            stmt = text[m.end():end if end >= 0 else m.end() + 200]
            jt = None
            c = re.match(r"\s*,\s*(json_\w+)\s*\(", stmt)
            if c and c.group(1) in JSON_CTOR:
                jt = JSON_CTOR[c.group(1)]
            jt = packed.get(m.start(), jt)
            line = text.count("\n", 0, m.start()) + 1
            out.setdefault(m.group(1), []).append((os.path.relpath(path, src_root), line, jt))
    return out


def design_fields(path):
    text = open(path, encoding="utf-8").read()
    sec = re.search(r"## 2\. Workloads(.*?)\n## 3\.", text, re.S)
    return sorted(set(re.findall(r"`(\w+__c)`", sec.group(1) if sec else "")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="repository root")
    ap.add_argument("--design", help="DESIGN.md (optional)")
    a = ap.parse_args()
    sf = load_sf(os.path.join(a.source, "sf"))
    sim = load_sim(os.path.join(a.source, "tests/sfsim/org_schema.c"))
    problems = []
    if not sf:
        problems.append("no custom field under sf/force-app/main/default/objects")

    for (obj, name), f in sorted(sf.items()):
        if "error" in f:
            problems.append("%s: %s" % (f["path"], f["error"]))
        if not f["description"]:
            problems.append("sf %s.%s has no description" % (obj, name))
        s = sim.get((obj.lower(), name))
        if not s:
            problems.append("sf %s.%s is not in tests/sfsim/org_schema.c" % (obj, name))
            continue
        if s["type"] not in SF_TO_SIM.get(f["type"], set()):
            problems.append("%s.%s: sf type %s, sim type %s" % (obj, name, f["type"], s["type"]))
        if f["type"] == "Text" and f["length"] and int(f["length"]) != s["length"]:
            problems.append("%s.%s: sf length %s, sim length %d" % (obj, name, f["length"], s["length"]))
        if f["type"] == "Number":
            if int(f["precision"] or 0) != s["length"] or int(f["scale"] or 0) != s["scale"]:
                problems.append("%s.%s: sf Number(%s,%s), sim (%d,%d)" % (obj, name, f["precision"],
                                                                       f["scale"], s["length"], s["scale"]))
        if f["type"] == "Lookup" and f["referenceTo"] not in s["ref"].split(","):
            problems.append("%s.%s: sf lookup to %s, sim reference %s" % (obj, name, f["referenceTo"], s["ref"]))
        if f["type"] == "Picklist" and f["values"] != s["values"]:
            problems.append("%s.%s: sf picklist %s, sim %s" % (obj, name, f["values"], s["values"]))

    sf_by_name = {name: f for (obj, name), f in sf.items()}
    sim_custom = {name for (_t, name) in sim if name.endswith("__c")}
    for name in sorted(sim_custom - set(sf_by_name)):
        problems.append("sim field %s has no sf/ metadata" % name)

    writes = code_writes(a.source)
    for name, uses in sorted(writes.items()):
        f = sf_by_name.get(name)
        where = "%s:%d" % uses[0][:2]
        if not f:
            problems.append("%s: code uses %s, not in sf/" % (where, name))
            continue
        for path, line, jt in uses:
            if jt and f["type"] not in JSON_OK[jt]:
                problems.append("%s:%d: writes %s as JSON %s, sf type is %s" % (path, line, name, jt, f["type"]))
            if jt == "null" and f["type"] == "Checkbox":
                problems.append("%s:%d: writes null to Checkbox %s (Salesforce needs true/false)" % (path, line, name))

    if a.design:
        for name in design_fields(a.design):
            if name not in sf_by_name:
                problems.append("DESIGN.md section 2 names %s, not in sf/" % name)

    typed = sum(1 for u in writes.values() for x in u if x[2])
    print("sf fields: %d in sf/, %d custom in sim, %d named in C sources (%d uses with a typed value)"
          % (len(sf), len(sim_custom), len(writes), typed))
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
