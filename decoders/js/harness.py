"""The JavaScript half of the sandbox: loads a codec as a factory and runs every call on fresh codec state.

It is evaluated in each context after the shims and before the codec, so it captures the built-ins
(``JSON``, ``Reflect``, ``Object``, ``Set``) before the codec can replace them; Python keeps handles to its
functions and nothing of it stays reachable from the codec's globals.

Fresh state per call (as ChirpStack and The Things Stack give each call its own runtime): the codec is
loaded wrapped in a factory, ``(function () { <source>\\n;return function (entry) {...}; })``, which hands back
a picker of its entry functions
(:func:`factory_source`; the prefix shares the first source line, so line numbers stay the codec's),
in sloppy mode as a script would be, and the factory is called with ``this`` = the global object for
every call. Top-level ``var``/``let``/``const``, function declarations, closures, function properties
and ``Map``s are therefore made anew by each call; a lookup table built at top level is rebuilt per call
(tests/perf/bench_js.py measures what that costs).

* ``seal(factory, text)`` (once): checks that the factory is exactly the wrapper (a source that closes
  the function early, to keep state outside it, is refused), runs it once (the load: syntax and load
  errors surface here, polyfills land on the built-ins), remembers which entry functions it defines,
  then freezes every built-in deeply (each object reachable from the global bindings and the hidden
  intrinsics, including what the codec hung on them while loading), with SES-style "override taming"
  so that ``obj.toString = f`` and ``err.message = m`` still work on ordinary objects, and puts the
  global object back as it was before the load: the codec's own globals (undeclared assignments) are
  made again by every call. A ``Map``, ``Set``, typed array or ``Date`` left on a built-in at load
  would be shared state: loading fails instead.
* ``call(json)`` (any entry function) and ``uplink(bytes json, fPort, recvTime, norm, variables json)`` (a
  worker's plain uplink: the same input, without an envelope to parse): parse the arguments (fresh copies),
  run the factory, call the entry function (and, when asked, ``normalizeUplink`` on a JSON copy of the
  decoded data, in the same run), JSON-encode
  ``{r: result, e: error, n: normalized, ne: its error, l: console lines}``, bound its size, then
  ``reset()``. A leading ``"!"`` tells Python the state could not be restored and the context must be
  rebuilt.
* ``reset()``: restores ``globalThis``'s prototype and, when the count of enumerable or symbol-keyed
  globals changed, or a ``defineProperty`` targeted the global object, deletes every global the call
  added. Returns 1 when something cannot be put back (a non-configurable global added by a call, a
  global object made non-extensible).

Re-running the top level per call meets frozen built-ins: a load-time ``Object.defineProperty(Array.prototype,
'sum', ...)`` done again is skipped (the wrappers of ``defineProperty``/``defineProperties``/
``Reflect.defineProperty`` leave an existing property of a sealed object alone), and a sloppy-mode
assignment to one is ignored, as JavaScript does for frozen objects. What remains shared between calls
is only what a codec puts on a built-in while loading: such functions keep the scope of the load run.
"""

from __future__ import annotations

import json
from typing import Any

ENTRY_FUNCTIONS = ("decodeUplink", "normalizeUplink", "encodeDownlink", "decodeDownlink", "Decode", "Encode",
                   "decode", "Decoder", "Encoder")
"""The functions a codec may define; the factory hands back those it defines."""

_FACTORY_OPEN = "(function () { "
_FACTORY_CLOSE = (
    "\n;return function (entry) { switch (entry) { "
    + " ".join(f"case '{name}': return typeof {name} === 'function' ? {name} : undefined;" for name in ENTRY_FUNCTIONS)
    + " } }; })"
)
"""The factory hands back a picker: ``pick(name)`` is the entry function of that name in the run's scope, or
undefined. A call looks up only the functions it runs (a result object of every entry, mostly misses up the
global object's chain, cost a third of a microsecond per call), right after the top level, as before."""


def factory_source(source: str) -> str:
    """The codec wrapped in its factory; ``[1:-1]`` of it is the factory's own text (``seal`` checks it)."""
    return _FACTORY_OPEN + source + _FACTORY_CLOSE


HARNESS_JS = r"""
(function (G, options) {
  'use strict';
  var apply = Reflect.apply, ownKeys = Reflect.ownKeys, deleteProperty = Reflect.deleteProperty;
  var getProto = Object.getPrototypeOf, setProto = Object.setPrototypeOf, getDesc = Object.getOwnPropertyDescriptor;
  var defineProperty = Object.defineProperty, freeze = Object.freeze, create = Object.create;
  var symbolsOf = Object.getOwnPropertySymbols, isExtensible = Object.isExtensible;
  var jsonParse = JSON.parse, jsonStringify = JSON.stringify;
  var DateCtor = Date, StringCtor = String, ErrorCtor = Error, TypeErrorCtor = TypeError;
  var arrayJoin = Array.prototype.join, strSlice = String.prototype.slice;
  var regexExec = RegExp.prototype.exec, fnToString = Function.prototype.toString;
  var SetCtor = Set, setAdd = Set.prototype.add, setHas = Set.prototype.has;
  var WeakSetCtor = WeakSet, weakAdd = WeakSet.prototype.add, weakHas = WeakSet.prototype.has;
  var ENTRIES = %(entries)s;

  // The harness's own lists have no prototype: a codec's load-time setters on Array.prototype cannot see them.
  function list() { var l = []; setProto(l, null); return l; }
  function append(l, value) { l[l.length] = value; }

  var maxLogLines = options.maxLogLines, maxLogChars = options.maxLogChars;
  var capture = options.captureConsole, maxOutput = options.maxOutputChars;
  var logs = list(), droppedLogs = 0;

  function show(value) {
    if (typeof value === 'string') return value;
    try {
      var s = jsonStringify(value);
      if (s !== undefined) return s;
    } catch (e) { /* fall through */ }
    try { return StringCtor(value); } catch (e) { return '[unprintable]'; }
  }
  function log() {
    if (!capture) return;
    if (logs.length >= maxLogLines) { droppedLogs++; return; }
    var parts = list();
    for (var i = 0; i < arguments.length && i < 16; i++) append(parts, show(arguments[i]));
    var line = apply(arrayJoin, parts, [' ']);
    if (line.length > maxLogChars) line = apply(strSlice, line, [0, maxLogChars]) + '...';
    append(logs, line);
  }
  var consoleObject = {
    log: log, info: log, warn: log, error: log, debug: log, trace: log, dir: log,
    time: function () {}, timeEnd: function () {}, assert: function () {}
  };
  defineProperty(G, 'console', { value: consoleObject, writable: true, configurable: true, enumerable: false });

  var pristine = create(null), pristineValues = list();
  (function () {
    var keys = ownKeys(G);
    for (var i = 0; i < keys.length; i++) {
      pristine[keys[i]] = true;
      append(pristineValues, G[keys[i]]);
    }
  })();

  var sealed = new WeakSetCtor(), baseSet = create(null), baseProto = getProto(G);
  var factory = null, enumCount = 0, symCount = 0;

  // A property of a sealed object that exists already is left alone: the top level, run again by every
  // call, repeats what it did to the built-ins at load. Any other definition on the global object marks
  // it for the reset (the only ways to add a non-enumerable global; the cheap per-call check counts).
  var globalTouched = false;
  var rawDefine = defineProperty, rawDefineAll = Object.defineProperties, rawReflectDefine = Reflect.defineProperty;
  function settled(obj, key) {
    if (obj === G) return baseSet[key] === true && !getDesc(G, key).configurable;
    return obj !== null && (typeof obj === 'object' || typeof obj === 'function') && apply(weakHas, sealed, [obj]) &&
      getDesc(obj, key) !== undefined;
  }
  Object.defineProperty = function defineProperty(obj, key, desc) {
    if (settled(obj, key)) return obj;
    if (obj === G) globalTouched = true;
    return rawDefine(obj, key, desc);
  };
  Object.defineProperties = function defineProperties(obj, props) {
    if (obj === G) globalTouched = true;
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function') || !apply(weakHas, sealed, [obj])) {
      return rawDefineAll(obj, props);
    }
    var keys = ownKeys(props), desc;
    for (var i = 0; i < keys.length; i++) {
      desc = getDesc(props, keys[i]);
      if (desc && desc.enumerable && !settled(obj, keys[i])) rawDefine(obj, keys[i], props[keys[i]]);
    }
    return obj;
  };
  Reflect.defineProperty = function defineProperty(obj, key, desc) {
    if (settled(obj, key)) return true;
    if (obj === G) globalTouched = true;
    return rawReflectDefine(obj, key, desc);
  };

  var TAMED = create(null);
  TAMED.constructor = true; TAMED.toString = true; TAMED.valueOf = true; TAMED.toLocaleString = true;
  TAMED.name = true; TAMED.message = true;

  // A frozen prototype makes `obj.toString = f` fail silently on every object inheriting from it (the
  // "override mistake"); an accessor whose setter defines an own property on the receiver avoids that.
  function tame(proto) {
    var keys = ownKeys(proto);
    for (var i = 0; i < keys.length; i++) {
      var key = keys[i], desc = getDesc(proto, key);
      if (typeof key !== 'string' || !TAMED[key] || !desc || !('value' in desc) || !desc.writable) continue;
      (function (key, value, enumerable) {
        rawDefine(proto, key, {
          get: function () { return value; },
          set: function (v) {
            if (this === proto) throw new TypeErrorCtor('Cannot assign to read only property ' + key);
            rawDefine(this, key, { value: v, writable: true, enumerable: true, configurable: true });
          },
          enumerable: enumerable, configurable: false
        });
      })(key, desc.value, desc.enumerable);
    }
  }

  // Objects whose state lives in internal slots stay writable when frozen (map.set, view[0] = 1). Found by
  // brand checks (a method of the kind that throws for anything else), tried only on objects whose
  // prototype chain leads to such a kind, and by ArrayBuffer.isView for typed arrays and DataViews.
  var isView = ArrayBuffer.isView, brandProtos = list(), brandChecks = list();
  (function () {
    function getter(ctor, name) { return getDesc(ctor.prototype, name).get; }
    var kinds = [[Map, getter(Map, 'size')], [Set, getter(Set, 'size')], [WeakMap, WeakMap.prototype.has],
                 [WeakSet, WeakSet.prototype.has], [Date, Date.prototype.getTime],
                 [ArrayBuffer, getter(ArrayBuffer, 'byteLength')]];
    var optional = [['SharedArrayBuffer', 'byteLength', true], ['WeakRef', 'deref', false],
                    ['FinalizationRegistry', 'unregister', false], ['DisposableStack', 'disposed', true],
                    ['AsyncDisposableStack', 'disposed', true]];
    for (var i = 0; i < optional.length; i++) {
      var ctor = G[optional[i][0]];
      if (typeof ctor !== 'function') continue;
      append(kinds, [ctor, optional[i][2] ? getter(ctor, optional[i][1]) : ctor.prototype[optional[i][1]]]);
    }
    for (i = 0; i < kinds.length; i++) { append(brandProtos, kinds[i][0].prototype); append(brandChecks, kinds[i][1]); }
  })();
  function stateful(obj) {
    if (isView(obj)) return true;
    for (var p = getProto(obj), depth = 0; p !== null && depth < 16; p = getProto(p), depth++) {
      for (var i = 0; i < brandProtos.length; i++) {
        if (p !== brandProtos[i]) continue;
        try { apply(brandChecks[i], obj, [{}]); return true; } catch (e) { return false; }
      }
    }
    return false;
  }

  // Intrinsics no global binding reaches: reached through an instance's prototype chain.
  function hiddenIntrinsics() {
    var out = list(), makers = [
      function () { return function* () {}; }, function () { return (function* () {})(); },
      function () { return async function () {}; }, function () { return async function* () {}; },
      function () { return (async function* () {})(); }, function () { return [][Symbol.iterator](); },
      function () { return new Map().entries(); }, function () { return new Set().values(); },
      function () { return ''[Symbol.iterator](); }, function () { return 'a'.matchAll(/a/g); },
      function () { return [].values().map(function (v) { return v; }); },
      function () { return Iterator.from({ next: function () { return { done: true }; } }); }
    ];
    for (var i = 0; i < makers.length; i++) {
      try { append(out, makers[i]()); } catch (e) { /* not in this engine */ }
    }
    return out;
  }

  // Every object reachable from the built-ins (own values, accessors, prototypes) is frozen, so neither a
  // built-in nor one of its methods can carry a value from one call to the next.
  function intrinsicRoots() {
    var roots = list(), keys = ownKeys(G), hidden = hiddenIntrinsics(), i;
    for (i = 0; i < pristineValues.length; i++) append(roots, pristineValues[i]);
    for (i = 0; i < keys.length; i++) if (pristine[keys[i]]) append(roots, G[keys[i]]);
    for (i = 0; i < hidden.length; i++) append(roots, getProto(hidden[i]));
    return roots;
  }

  function deepFreeze(roots) {
    var seen = new SetCtor(), queue = list(), keys, obj, desc, i, j;
    function visit(v) {
      if (v === null || v === G || (typeof v !== 'object' && typeof v !== 'function')) return;
      if (apply(setHas, seen, [v])) return;
      apply(setAdd, seen, [v]);
      append(queue, v);
    }
    for (i = 0; i < roots.length; i++) visit(roots[i]);
    for (i = 0; i < queue.length; i++) {
      obj = queue[i];
      visit(getProto(obj));
      keys = ownKeys(obj);
      for (j = 0; j < keys.length; j++) {
        desc = getDesc(obj, keys[j]);
        if (!desc) continue;
        if ('value' in desc) visit(desc.value);
        else { visit(desc.get); visit(desc.set); }
      }
    }
    for (i = 0; i < queue.length; i++) {
      obj = queue[i];
      if (stateful(obj)) {
        throw new TypeErrorCtor('the codec leaves a Map, Set, typed array, Date or the like on a built-in while ' +
                                'loading; built-ins are frozen and shared by every call: keep it in a variable');
      }
      freeze(obj);
      apply(weakAdd, sealed, [obj]);
    }
  }

  function hardenIntrinsics() {
    var errors = [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError];
    if (typeof InternalError === 'function') append(errors, InternalError);
    if (typeof AggregateError === 'function') append(errors, AggregateError);
    tame(Object.prototype);
    for (var i = 0; i < errors.length; i++) tame(errors[i].prototype);
    deepFreeze(intrinsicRoots());
  }

  function countEnumerable() {
    var n = 0, key;
    for (key in G) n++;
    return n;
  }

  function seal(f, text) {
    if (typeof f !== 'function' || apply(fnToString, f, []) !== text) {
      throw new TypeErrorCtor('the source must be a script: it ends the function it is loaded in');
    }
    factory = f;
    var pick = apply(f, G, []), names = list(), i, keys, key, desc;
    for (i = 0; i < ENTRIES.length; i++) if (typeof pick(ENTRIES[i]) === 'function') append(names, ENTRIES[i]);
    hardenIntrinsics();
    keys = ownKeys(G);
    for (i = 0; i < keys.length; i++) {
      key = keys[i];
      desc = getDesc(G, key);
      if (pristine[key]) {
        // Built-in bindings become read-only: a call cannot swap JSON or Math for the next one.
        if ('value' in desc) rawDefine(G, key, { writable: false, configurable: false });
        else rawDefine(G, key, { configurable: false });
        baseSet[key] = true;
      } else if (!deleteProperty(G, key)) {
        // A non-configurable global from the load stays; read-only and deeply frozen, it holds no state.
        if ('value' in desc) rawDefine(G, key, { writable: false });
        baseSet[key] = true;
        var held = list();
        append(held, desc.value); append(held, desc.get); append(held, desc.set);
        deepFreeze(held);
      }
    }
    enumCount = countEnumerable();
    symCount = symbolsOf(G).length;
    globalTouched = false;
    return jsonStringify({ functions: names });
  }

  function reset() {
    var dirty = 0, i, keys;
    if (getProto(G) !== baseProto) {
      try { setProto(G, baseProto); } catch (e) { dirty = 1; }
    }
    if (!isExtensible(G)) dirty = 1;  // preventExtensions, seal or freeze of the global object: not undoable
    if (globalTouched || countEnumerable() !== enumCount || symbolsOf(G).length !== symCount) {
      keys = ownKeys(G);
      for (i = 0; i < keys.length; i++) {
        if (baseSet[keys[i]] !== true && !deleteProperty(G, keys[i])) dirty = 1;
      }
      globalTouched = false;
      if (countEnumerable() !== enumCount || symbolsOf(G).length !== symCount) dirty = 1;
    }
    return dirty;
  }

  function describe(err) {
    try {
      if (err instanceof ErrorCtor) {
        var text = StringCtor(err.name) + ': ' + StringCtor(err.message);
        var where = apply(regexExec, /at ([^\s(]+) \(<input>:(\d+)(?::\d+)?\)|at <input>:(\d+)/,
                          [StringCtor(err.stack)]);
        if (where) text += where[2] ? ' (in ' + where[1] + ', line ' + where[2] + ')' : ' (line ' + where[3] + ')';
        return text;
      }
      if (typeof err === 'string') return err;
      return 'uncaught ' + show(err);
    } catch (e) {
      return 'uncaught exception (not describable)';
    }
  }

  // The decoded answer as JSON text, once: normalizeUplink gets a parsed copy of it (the data as the host
  // will see it), and call() splices the same text into the envelope instead of encoding it again.
  function normalized(normalize, r, env) {
    var text, copy;
    try { text = jsonStringify(r); } catch (err) { return undefined; }  // call() reports it as not JSON
    copy = text === undefined ? undefined : jsonParse(text);
    if (copy === null || typeof copy !== 'object' || copy.data === null || typeof copy.data !== 'object') return text;
    try {
      env.n = apply(normalize, undefined, [{ data: copy.data }]);
    } catch (err) {
      env.ne = describe(err);
    }
    return text;
  }

  // One call of an entry function on fresh state, answered as the envelope text; reset() always follows.
  function run(name, args, recvTime, norm) {
    var out, dirty = 0, rText;
    if (logs.length) logs = list();
    droppedLogs = 0;
    try {
      var env = create(null);
      try {
        var pick = apply(factory, G, []), fn = pick(name), normalize = norm ? pick('normalizeUplink') : undefined;
        if (typeof fn !== 'function') {
          env.e = 'the codec defines no ' + name + '()';
        } else {
          var first = args[0];
          if (recvTime !== undefined && first !== null && typeof first === 'object') {
            first.recvTime = new DateCtor(recvTime);
          }
          var r = env.r = apply(fn, undefined, args);
          // TTN's normalizeUplink on the decoded data, in the same run: one call per uplink, not two.
          if (typeof normalize === 'function' && r !== null && typeof r === 'object' &&
              r.data !== null && typeof r.data === 'object' && !(r.errors && r.errors.length)) {
            rText = normalized(normalize, r, env);
          }
        }
      } catch (err) {
        env.e = describe(err);
        rText = undefined;
        if (apply(regexExec, /out of memory/, [env.e])) dirty = 1;
      }
      if (droppedLogs) append(logs, '(' + droppedLogs + ' more console lines dropped)');
      if (logs.length) env.l = logs;
      try {
        if (rText !== undefined && env.e === undefined) {
          delete env.r;
          out = jsonStringify(env);
          out = '{"r":' + rText + (out.length > 2 ? ',' + apply(strSlice, out, [1]) : '}');
        } else {
          out = jsonStringify(env);
        }
      } catch (err) {
        out = jsonStringify({ e: 'the result is not JSON: ' + describe(err), l: env.l });
      }
      if (out === undefined) out = '{}';
      if (out.length > maxOutput) {
        out = jsonStringify({ e: 'the result is too large: ' + out.length + ' characters, the limit is ' + maxOutput });
      }
    } finally {
      dirty = reset() | dirty;
    }
    return dirty ? '!' + out : out;
  }

  // Any entry function: {fn, args, recvTime?, norm?} as JSON, parsed into fresh copies.
  function call(argsJson) {
    var a = jsonParse(argsJson);
    return run(a.fn, a.args, a.recvTime, a.norm);
  }

  // decodeUplink, without the envelope's JSON: the bytes as JSON text, variables as JSON text or null (the
  // input then has no variables). The input object is the same one call() would parse, keys in the same order.
  function uplink(bytesJson, fPort, recvTime, norm, variablesJson) {
    var bytes = jsonParse(bytesJson), input = variablesJson === null ? { bytes: bytes, fPort: fPort } :
      { bytes: bytes, fPort: fPort, variables: jsonParse(variablesJson) };
    return run('decodeUplink', [input], recvTime, norm);
  }

  return { seal: seal, call: call, uplink: uplink, reset: reset };
})
"""


def harness_expression(options: dict[str, Any]) -> str:
    """The script that installs the harness with these options and evaluates to its handle."""
    body = HARNESS_JS.replace("%(entries)s", json.dumps(list(ENTRY_FUNCTIONS)))
    return f"{body}(globalThis, {json.dumps(options)})"
