#!/usr/bin/env bash
# The cargo features the test suite and CI build with: every optional
# backend, but not the libFuzzer engine (fuzz binaries need sanitizer
# coverage flags; their corpora are replayed by `cargo test` instead).
echo "tgtkit-backstores/io-uring,tgtkit-backstores/qcow2"
