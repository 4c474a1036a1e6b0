;; A particle written by hand in the component-model text format, without the
;; Rust SDK: proof that the `particle` world (wit/process.wit) is the whole
;; contract, and a fixture for runtime tests that must not depend on a guest
;; toolchain.
;;
;; Behaviour: `start` logs "hello from a hand-written WAT particle" at info
;; level, then calls `exit(shutdown("from-wat"))`, so the particle ends with
;; the exit reason shutdown("from-wat"). It never returns from `start`.
;;
;; ABI notes (the canonical ABI, as wit-bindgen would generate it):
;; - A component may import a subset of an interface: the instance type below
;;   lists only the two types and two functions this particle uses. Types are
;;   structural, but must be exported under their WIT names so that the
;;   instance type is a subtype of the host's `process` instance.
;; - `log(level: log-level, message: string)` flattens to three i32s: the enum
;;   case index (trace=0, debug=1, info=2, warn=3, error=4), then the string's
;;   pointer and byte length in linear memory.
;; - `exit(reason: exit-reason)` flattens to three i32s: the variant case index
;;   (normal=0, kill=1, killed=2, shutdown=3, exception=4, noproc=5,
;;   noconnection=6), then the joined payload of all cases, here a string's
;;   pointer and length (ignored by cases without payload).
;; - `start: func(init: string) -> result<_, string>` takes (ptr, len) and,
;;   because its result flattens to more than one value, returns a pointer to
;;   a return area (tag byte at +0, error string ptr/len at +4/+8). This
;;   particle never returns, but the core signature must still be
;;   (i32 i32) -> i32 for the lift to type-check.
;; - Lifting `start` needs `realloc`: the host calls `cabi_realloc` to get
;;   guest memory for the init string before the call. Lowering `log` and
;;   `exit` needs the memory the strings live in.
;; - That memory is defined in its own tiny core module, instantiated first:
;;   the lowered imports need the memory, and the main module needs the
;;   lowered imports, so putting the memory in the main module would be a
;;   cycle.
(component
  (import "plasmoid:runtime/process@0.1.0" (instance $process
    (type $exit-reason-def (variant
      (case "normal")
      (case "kill")
      (case "killed")
      (case "shutdown" string)
      (case "exception" string)
      (case "noproc")
      (case "noconnection")))
    (export "exit-reason" (type $exit-reason (eq $exit-reason-def)))
    (type $log-level-def (enum "trace" "debug" "info" "warn" "error"))
    (export "log-level" (type $log-level (eq $log-level-def)))
    (export "log" (func (param "level" $log-level) (param "message" string)))
    (export "exit" (func (param "reason" $exit-reason)))))

  (alias export $process "log" (func $log))
  (alias export $process "exit" (func $exit))

  ;; The linear memory, on its own (see the ABI notes).
  (core module $Memory
    (memory (export "memory") 1))
  (core instance $memory (instantiate $Memory))
  (alias core export $memory "memory" (core memory $mem))

  (core func $log-lowered (canon lower (func $log) (memory $mem)))
  (core func $exit-lowered (canon lower (func $exit) (memory $mem)))
  (core instance $host
    (export "log" (func $log-lowered))
    (export "exit" (func $exit-lowered)))

  (core module $Main
    (import "env" "memory" (memory 1))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (import "host" "exit" (func $exit (param i32 i32 i32)))

    ;; Constant strings; the heap starts above them.
    (data (i32.const 16) "hello from a hand-written WAT particle")
    (data (i32.const 64) "from-wat")

    ;; Next free byte of a bump allocator: memory is never freed, which is
    ;; fine for a particle whose only allocation is its init string.
    (global $heap (mut i32) (i32.const 1024))

    ;; cabi_realloc(old_ptr, old_size, align, new_size) -> new_ptr
    (func (export "cabi_realloc")
      (param $old_ptr i32) (param $old_size i32) (param $align i32) (param $new_size i32)
      (result i32)
      (local $ptr i32)
      (local $end i32)
      (local $pages i32)
      ;; ptr = align_up(heap, align); align is a power of two.
      (local.set $ptr
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $new_size)))
      ;; Grow the memory when the block ends past it; a failed grow traps.
      (local.set $pages
        (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
      (if (i32.gt_u (local.get $pages) (memory.size))
        (then
          (if (i32.eq
                (memory.grow (i32.sub (local.get $pages) (memory.size)))
                (i32.const -1))
            (then unreachable))))
      ;; A resize keeps the old contents (the host only ever asks for new
      ;; blocks here, but the contract allows resizes).
      (if (local.get $old_size)
        (then
          (memory.copy
            (local.get $ptr)
            (local.get $old_ptr)
            (select
              (local.get $old_size)
              (local.get $new_size)
              (i32.lt_u (local.get $old_size) (local.get $new_size))))))
      (global.set $heap (local.get $end))
      (local.get $ptr))

    ;; start(init_ptr, init_len) -> return-area pointer (never returned).
    (func (export "start") (param $init_ptr i32) (param $init_len i32) (result i32)
      ;; log(info, "hello from a hand-written WAT particle")
      (call $log (i32.const 2) (i32.const 16) (i32.const 38))
      ;; exit(shutdown("from-wat")) does not return.
      (call $exit (i32.const 3) (i32.const 64) (i32.const 8))
      unreachable))

  (core instance $main (instantiate $Main
    (with "env" (instance $memory))
    (with "host" (instance $host))))

  (func $start (param "init" string) (result (result (error string)))
    (canon lift
      (core func $main "start")
      (memory $mem)
      (realloc (core func $main "cabi_realloc"))))
  (export "start" (func $start)))
