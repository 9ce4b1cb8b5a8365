#!/usr/bin/env python3
"""Print a crate's public API, one sorted line per item, from rustdoc JSON.

Usage: public-api.py TARGET/doc/CRATE.json

Each line is `kind path` and, for items with a signature or a shape
(functions, methods, fields, variants, constants, type aliases), a short
hash of it with rustdoc's unstable item ids taken out, so the listing only
changes when the API does. scripts/api-check.sh writes these listings to
api/<crate>.txt and CI diffs them: a change to the public API is a change
to a file a reviewer sees (and a CHANGELOG entry).
"""
import hashlib
import json
import sys


def strip_ids(v):
    """The value with rustdoc's per-build ids removed."""
    if isinstance(v, dict):
        return {k: strip_ids(x) for k, x in sorted(v.items()) if k not in ("id", "span", "links")}
    if isinstance(v, list):
        return [strip_ids(x) for x in v]
    return v


def sig(v):
    text = json.dumps(strip_ids(v), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def main(path):
    d = json.load(open(path))
    index = d["index"]
    out = set()

    def item(i):
        return index.get(str(i)) or index.get(i)

    def public(it):
        return it is not None and it.get("visibility") == "public"

    def variant_shape(vi):
        """A variant's fields by name and type (field ids are per build)."""
        v = vi["inner"]["variant"]
        kind = v.get("kind")
        fields = []
        if isinstance(kind, dict):
            ids = kind.get("tuple") or (kind.get("struct") or {}).get("fields") or []
            for f in ids:
                fi = item(f) if f is not None else None
                fields.append(None if fi is None else [fi.get("name"), fi["inner"]])
        else:
            fields = kind
        return {"fields": fields, "discriminant": v.get("discriminant")}

    def impls_of(prefix, inner):
        for impl_id in inner.get("impls", []):
            imp = item(impl_id)
            if imp is None:
                continue
            body = imp["inner"].get("impl", {})
            if body.get("is_synthetic") or body.get("blanket_impl"):
                continue
            trait = body.get("trait")
            if trait is not None:
                out.add(f"impl {trait.get('path')} for {prefix}")
                continue
            for m in body.get("items", []):
                mi = item(m)
                if not public(mi):
                    continue
                kind = next(iter(mi["inner"]))
                out.add(f"{kind} {prefix}::{mi['name']} {sig(mi['inner'])}")

    def visit(prefix, it, seen):
        kind = next(iter(it["inner"]))
        inner = it["inner"][kind]
        name = it.get("name")
        here = f"{prefix}::{name}" if prefix and name else (name or prefix)
        if kind == "module":
            if it["id"] in seen:
                return
            seen = seen | {it["id"]}
            out.add(f"mod {here}")
            for c in inner.get("items", []):
                ci = item(c)
                if public(ci):
                    visit(here, ci, seen)
        elif kind == "use":
            target = inner.get("id")
            ti = item(target) if target is not None else None
            if ti is not None and next(iter(ti["inner"])) == "module" and inner.get("is_glob"):
                for c in ti["inner"]["module"].get("items", []):
                    ci = item(c)
                    if public(ci):
                        visit(prefix, ci, seen)
            else:
                out.add(f"use {prefix}::{inner.get('name')} = {inner.get('source')}")
        elif kind == "struct":
            out.add(f"struct {here} {sig(inner.get('generics'))}")
            shape = inner.get("kind", {})
            fields = []
            if isinstance(shape, dict):
                plain = shape.get("plain")
                if plain:
                    fields = plain.get("fields", [])
                elif shape.get("tuple"):
                    fields = [f for f in shape["tuple"] if f is not None]
            for f in fields:
                fi = item(f)
                if public(fi):
                    out.add(f"field {here}::{fi['name']} {sig(fi['inner'])}")
            impls_of(here, inner)
        elif kind == "enum":
            out.add(f"enum {here} {sig(inner.get('generics'))}")
            for v in inner.get("variants", []):
                vi = item(v)
                if vi is not None:
                    out.add(f"variant {here}::{vi['name']} {sig(variant_shape(vi))}")
            impls_of(here, inner)
        elif kind == "trait":
            out.add(f"trait {here} {sig(inner.get('generics'))}")
            for m in inner.get("items", []):
                mi = item(m)
                if mi is not None:
                    out.add(f"{next(iter(mi['inner']))} {here}::{mi['name']} {sig(mi['inner'])}")
        elif kind == "union":
            out.add(f"union {here}")
            impls_of(here, inner)
        else:
            out.add(f"{kind} {here} {sig(inner)}")

    root = item(d["root"])
    visit("", root, frozenset())
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
