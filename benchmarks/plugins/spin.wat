;; A CPU-bound benchmark plugin: spin(args) counts down from the number in its args.
;; The registration and the result are static strings; gk_malloc is a bump allocator that
;; starts again at every call (the host never holds a block across calls).
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"name\":\"spin\",\"version\":\"1.0.0\",\"functions\":[{\"name\":\"spin\"}]}")
  (data (i32.const 128) "{\"ok\":true}")
  (global $bump (mut i32) (i32.const 1024))
  (func (export "gk_malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (i32.const 1024))
    (if (i32.gt_u (i32.add (local.get $n) (i32.const 1024)) (i32.const 65536)) (then (return (i32.const 0))))
    (local.get $p))
  (func (export "gk_free") (param i32))
  (func (export "gk_register") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 63)))
  (func (export "gk_call") (param $fp i32) (param $fl i32) (param $ap i32) (param $al i32) (result i64)
    (local $i i32) (local $c i32) (local $n i64)
    (block $done
      (loop $digits
        (br_if $done (i32.ge_u (local.get $i) (local.get $al)))
        (local.set $c (i32.load8_u (i32.add (local.get $ap) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
          (then (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10))
                                       (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digits)))
    (block $end
      (loop $spin
        (br_if $end (i64.eqz (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $spin)))
    (i64.or (i64.shl (i64.const 128) (i64.const 32)) (i64.const 11))))
