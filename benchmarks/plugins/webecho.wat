;; A route benchmark plugin: GET /bench/echo answers with the flat request object it was given
;; (gk_call returns its args block itself, so the call allocates and copies nothing).
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"name\":\"webecho\",\"version\":\"1.0.0\",\"functions\":[{\"name\":\"echo\"}],\"routes\":[{\"method\":\"GET\",\"path\":\"/bench/echo\",\"handler\":\"echo\"}]}")
  (func (export "gk_malloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 60000)) (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "gk_free") (param i32))
  (func (export "gk_register") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 132)))
  (func (export "gk_call") (param $fp i32) (param $fl i32) (param $ap i32) (param $al i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ap)) (i64.const 32))
            (i64.extend_i32_u (local.get $al)))))
