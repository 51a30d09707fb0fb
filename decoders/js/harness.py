"""The JavaScript half of the sandbox: runs one codec call and puts the context back as it was after load.

It is evaluated in each context after the shims and before the codec, so it captures the built-ins
(``JSON``, ``Reflect``, ``Object``) before the codec can replace them; Python keeps handles to its three
functions and nothing of it stays reachable from the codec's globals.

* ``seal(found)`` (once, after the codec loaded): remembers the codec's entry functions; freezes the
  built-ins one level deep (constructors, prototypes, ``Math``/``JSON``/``Reflect``, the shims, and
  whatever the codec hung on them while loading), with SES-style "override taming" so that
  ``obj.toString = f`` and ``err.message = m`` still work on ordinary objects; makes built-in global
  bindings read-only and every global binding non-configurable, recording the codec's own; plans the
  check of the codec's top-level data (below).
* ``call(json)``: parses the arguments (so every call gets fresh copies), calls the entry function,
  JSON-encodes ``{r: result, e: error, l: console lines}``, bounds its size, then ``reset()``s. A leading
  ``"!"`` on the answer tells Python the state could not be restored and the context must be rebuilt
  (a one-character flag: a second call from Python would cost more than the check).
* ``reset()``: restores ``globalThis``'s prototype; when the count of enumerable globals changed, or
  a ``defineProperty`` targeted the global object, deletes every global the call added; restores the
  codec's reassigned globals; and checks its top-level data (array lengths, key counts of objects up
  to 32 keys, the first 64 values by identity). Returns 1 when something cannot be put back.

Measured on the 2-core dev machine: the reset costs about 1 us of JavaScript per call without top-level
data and 3-5 us with a small lookup table, against 4-100 us for an exact JSON fingerprint of such tables.

What a reset cannot see: state kept in closures or top-level ``let``/``const`` bindings, properties
added to functions, values deep in large top-level tables (beyond the 64 checked), the contents of
``Map``/``Set``/typed arrays, and symbol-keyed globals. A codec has to be written to keep state that
way; ``decoders/js/codec.py`` says how callers confine such codecs.
"""

from __future__ import annotations

import json
from typing import Any

LOOKUP_JS = r"""
(function () {
  var found = {}, t;
  try { t = decodeUplink; if (typeof t === 'function') found.decodeUplink = t; } catch (e) {}
  try { t = normalizeUplink; if (typeof t === 'function') found.normalizeUplink = t; } catch (e) {}
  try { t = encodeDownlink; if (typeof t === 'function') found.encodeDownlink = t; } catch (e) {}
  try { t = decodeDownlink; if (typeof t === 'function') found.decodeDownlink = t; } catch (e) {}
  try { t = Decode; if (typeof t === 'function') found.Decode = t; } catch (e) {}
  try { t = Encode; if (typeof t === 'function') found.Encode = t; } catch (e) {}
  try { t = decode; if (typeof t === 'function') found.decode = t; } catch (e) {}
  return found;
})()
"""
"""Evaluated as a script after the codec: sees top-level ``let``/``const`` bindings as well as globals."""

HARNESS_JS = r"""
(function (G, options) {
  'use strict';
  var apply = Reflect.apply, ownKeys = Reflect.ownKeys, deleteProperty = Reflect.deleteProperty;
  var getProto = Object.getPrototypeOf, getDesc = Object.getOwnPropertyDescriptor;
  var defineProperty = Object.defineProperty, freeze = Object.freeze, create = Object.create;
  var jsonParse = JSON.parse, jsonStringify = JSON.stringify, isArray = Array.isArray;
  var DateCtor = Date, StringCtor = String, ErrorCtor = Error;
  var arrayJoin = Array.prototype.join, strSlice = String.prototype.slice;
  var regexExec = RegExp.prototype.exec;

  var maxLogLines = options.maxLogLines, maxLogChars = options.maxLogChars;
  var capture = options.captureConsole, maxOutput = options.maxOutputChars;
  var logs = [], droppedLogs = 0;

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
    var parts = [];
    for (var i = 0; i < arguments.length && i < 16; i++) parts[i] = show(arguments[i]);
    var line = apply(arrayJoin, parts, [' ']);
    if (line.length > maxLogChars) line = apply(strSlice, line, [0, maxLogChars]) + '...';
    logs[logs.length] = line;
  }
  var consoleObject = {
    log: log, info: log, warn: log, error: log, debug: log, trace: log, dir: log,
    time: function () {}, timeEnd: function () {}, assert: function () {}
  };
  defineProperty(G, 'console', { value: consoleObject, writable: true, configurable: true, enumerable: false });

  var pristine = create(null), pristineValues = [];
  (function () {
    var keys = ownKeys(G);
    for (var i = 0; i < keys.length; i++) {
      pristine[keys[i]] = true;
      pristineValues[pristineValues.length] = G[keys[i]];
    }
  })();

  // The only ways to add a non-enumerable global; the cheap per-call check counts enumerable ones.
  var globalTouched = false;
  var rawDefine = defineProperty, rawDefineAll = Object.defineProperties, rawReflectDefine = Reflect.defineProperty;
  Object.defineProperty = function defineProperty(obj, key, desc) {
    if (obj === G) globalTouched = true;
    return rawDefine(obj, key, desc);
  };
  Object.defineProperties = function defineProperties(obj, props) {
    if (obj === G) globalTouched = true;
    return rawDefineAll(obj, props);
  };
  Reflect.defineProperty = function defineProperty(obj, key, desc) {
    if (obj === G) globalTouched = true;
    return rawReflectDefine(obj, key, desc);
  };

  var entries = create(null), baseSet = create(null), baseProto = getProto(G), setProto = Object.setPrototypeOf;
  var codecNames = [], codecValues = [], enumCount = 0, dataNames = [];

  var TAMED = create(null);
  TAMED.constructor = true; TAMED.toString = true; TAMED.valueOf = true; TAMED.toLocaleString = true;
  TAMED.name = true; TAMED.message = true;

  // Array methods are never called on the harness's own arrays (a codec may have replaced them at load).
  function append(list, value) { list[list.length] = value; }
  function contains(list, value) {
    for (var i = 0; i < list.length; i++) if (list[i] === value) return true;
    return false;
  }

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
            if (this === proto) throw new TypeError('Cannot assign to read only property ' + key);
            rawDefine(this, key, { value: v, writable: true, enumerable: true, configurable: true });
          },
          enumerable: enumerable, configurable: false
        });
      })(key, desc.value, desc.enumerable);
    }
  }

  // Built-ins and what the codec hung on them at load are frozen one level deep: constructors, their
  // prototypes and namespace objects. Their methods stay extensible (a state channel only on purpose).
  function hardenIntrinsics() {
    var errors = [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError];
    if (typeof InternalError === 'function') append(errors, InternalError);
    if (typeof AggregateError === 'function') append(errors, AggregateError);
    tame(Object.prototype);
    for (var i = 0; i < errors.length; i++) tame(errors[i].prototype);
    var hidden = [function* () {}, async function () {}, async function* () {}, [][Symbol.iterator](),
                  new Map().entries(), new Set().values(), ''[Symbol.iterator](), Uint8Array];
    var roots = [], keys = ownKeys(G), obj, j;
    for (i = 0; i < pristineValues.length; i++) append(roots, pristineValues[i]);
    for (i = 0; i < keys.length; i++) if (pristine[keys[i]]) append(roots, G[keys[i]]);
    for (i = 0; i < hidden.length; i++) {
      for (obj = getProto(hidden[i]), j = 0; obj && j < 3; obj = getProto(obj), j++) append(roots, obj);
    }
    for (i = 0; i < roots.length; i++) {
      obj = roots[i];
      if (obj === G || obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) continue;
      if (typeof obj === 'function') {
        var proto = getDesc(obj, 'prototype');
        if (proto && proto.value && typeof proto.value === 'object') freeze(proto.value);
      }
      freeze(obj);
    }
  }

  // The codec's top-level data (objects and arrays its globals hold) is checked after every call with a
  // plan made at seal: array lengths, key counts of objects with at most 32 keys, and the first 64
  // values reachable breadth-first, compared by identity. Cheap (about 1 us for a small lookup table);
  // a change means a call wrote into shared data, and the context is rebuilt before the next call.
  var sizeObjs = [], sizeVals = [], sizeIsArray = [], valueObjs = [], valueKeys = [], valueVals = [];

  function planDataChecks() {
    var queue = [], seen = [], budget = 64, i, j, obj, keys, size, array, key, desc;
    for (i = 0; i < dataNames.length; i++) append(queue, G[dataNames[i]]);
    for (i = 0; i < queue.length; i++) {
      obj = queue[i];
      array = isArray(obj);
      keys = array ? null : ownKeys(obj);
      size = array ? obj.length : keys.length;
      if (!array && size > 32) continue;
      append(sizeObjs, obj); append(sizeVals, size); append(sizeIsArray, array);
      for (j = 0; j < size && budget > 0; j++) {
        key = array ? j : keys[j];
        desc = getDesc(obj, key);
        if (!desc || !('value' in desc)) continue;
        budget--;
        append(valueObjs, obj); append(valueKeys, key); append(valueVals, desc.value);
        if (desc.value !== null && typeof desc.value === 'object' && !contains(seen, desc.value)) {
          append(seen, desc.value);
          append(queue, desc.value);
        }
      }
    }
  }

  function dataChanged() {
    var i;
    for (i = 0; i < sizeObjs.length; i++) {
      if ((sizeIsArray[i] ? sizeObjs[i].length : ownKeys(sizeObjs[i]).length) !== sizeVals[i]) return true;
    }
    for (i = 0; i < valueObjs.length; i++) if (valueObjs[i][valueKeys[i]] !== valueVals[i]) return true;
    return false;
  }

  function countEnumerable() {
    var n = 0, key;
    for (key in G) n++;
    return n;
  }

  function seal(found) {
    var names = [], i, keys, key, desc;
    keys = ownKeys(found);
    for (i = 0; i < keys.length; i++) {
      if (typeof found[keys[i]] === 'function') { entries[keys[i]] = found[keys[i]]; append(names, keys[i]); }
    }
    hardenIntrinsics();
    keys = ownKeys(G);
    for (i = 0; i < keys.length; i++) {
      key = keys[i];
      desc = getDesc(G, key);
      baseSet[key] = true;
      if (pristine[key]) {
        // Built-in bindings become read-only: a call cannot swap JSON or Math for the next one.
        if ('value' in desc) rawDefine(G, key, { writable: false, configurable: false });
        else rawDefine(G, key, { configurable: false });
        continue;
      }
      if (desc.configurable) rawDefine(G, key, { configurable: false });
      if ('value' in desc && desc.writable) {
        append(codecNames, key);
        append(codecValues, desc.value);
        if (desc.value !== null && typeof desc.value === 'object') append(dataNames, key);
      }
    }
    enumCount = countEnumerable();
    globalTouched = false;
    planDataChecks();
    return jsonStringify({ functions: names, stateful: dataNames });
  }

  function reset() {
    var dirty = 0, i, keys;
    if (getProto(G) !== baseProto) {
      try { setProto(G, baseProto); } catch (e) { dirty = 1; }
    }
    if (globalTouched || countEnumerable() !== enumCount) {
      keys = ownKeys(G);
      for (i = 0; i < keys.length; i++) {
        if (!baseSet[keys[i]] && !deleteProperty(G, keys[i])) dirty = 1;
      }
      globalTouched = false;
      if (countEnumerable() !== enumCount) dirty = 1;
    }
    for (i = 0; i < codecNames.length; i++) {
      if (G[codecNames[i]] !== codecValues[i]) {
        try { G[codecNames[i]] = codecValues[i]; } catch (e) { dirty = 1; }
      }
    }
    if (sizeObjs.length || valueObjs.length) {
      try { if (dataChanged()) dirty = 1; } catch (e) { dirty = 1; }
    }
    return dirty;
  }

  function describe(err) {
    try {
      if (err instanceof ErrorCtor) {
        var text = StringCtor(err.name) + ': ' + StringCtor(err.message);
        var where = apply(regexExec, /at ([^\s(]+) \(<input>:(\d+)\)|at <input>:(\d+)/, [StringCtor(err.stack)]);
        if (where) text += where[2] ? ' (in ' + where[1] + ', line ' + where[2] + ')' : ' (line ' + where[3] + ')';
        return text;
      }
      if (typeof err === 'string') return err;
      return 'uncaught ' + show(err);
    } catch (e) {
      return 'uncaught exception (not describable)';
    }
  }

  function call(argsJson) {
    var out, dirty = 0;
    logs = [];
    droppedLogs = 0;
    try {
      var a = jsonParse(argsJson), env = create(null), fn = entries[a.fn];
      if (typeof fn !== 'function') {
        env.e = 'the codec defines no ' + a.fn + '()';
      } else {
        var first = a.args[0];
        if (a.recvTime !== undefined && first !== null && typeof first === 'object') {
          first.recvTime = new DateCtor(a.recvTime);
        }
        try {
          env.r = apply(fn, undefined, a.args);
        } catch (err) {
          env.e = describe(err);
          if (apply(regexExec, /out of memory/, [env.e])) dirty = 1;
        }
      }
      if (droppedLogs) append(logs, '(' + droppedLogs + ' more console lines dropped)');
      if (logs.length) env.l = logs;
      try {
        out = jsonStringify(env);
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

  return { seal: seal, call: call, reset: reset };
})
"""


def harness_expression(options: dict[str, Any]) -> str:
    """The script that installs the harness with these options and evaluates to its handle."""
    return f"{HARNESS_JS}(globalThis, {json.dumps(options)})"
