;; extism_echo: the Extism counterpart of plugins/echo, the baseline of the
;; WASM call benchmarks. Written against Extism's kernel imports directly
;; (no PDK), doing what a PDK-built echo does: read the input into a fresh
;; block 8 bytes at a time, then the tail byte by byte, and set it as output.
;; Extism accepts the module bytes as they are: wasmtime.wat2wasm(text).
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))

  (func (export "echo") (result i32)
    (local $len i64) (local $out i64) (local $i i64) (local $words_end i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (local.get $len)))
    ;; The largest multiple of 8 not above len: the part copied by words.
    (local.set $words_end (i64.and (local.get $len) (i64.const -8)))
    (block $words_done
      (loop $words
        (br_if $words_done (i64.ge_u (local.get $i) (local.get $words_end)))
        (call $store_u64
          (i64.add (local.get $out) (local.get $i))
          (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $words)))
    (block $bytes_done
      (loop $bytes
        (br_if $bytes_done (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $out) (local.get $i))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $bytes)))
    (call $output_set (local.get $out) (local.get $len))
    ;; 0: success for Extism.
    (i32.const 0)))
