"""The host-free globals that published codecs expect: ``atob``/``btoa``, a small ``Buffer``, ES2022 gaps.

OS2iot decoders call ``atob`` and ``Buffer.from(s, "base64")`` and read bytes with ``readUInt16LE``-style
methods; ChirpStack codecs use ``Buffer.from(bytes)`` and ``Buffer.alloc``. Nothing here reaches the host:
it is plain JavaScript evaluated inside the codec's own context, before the codec loads, so a codec may
still replace any of it with its own definition (some ship their own ``atob``).

The installed QuickJS predates ES2022, so ``Array.prototype.at``, ``Object.hasOwn`` and ``findLast`` are
added here for codecs written against Node 18+.

Parsing all of this costs about 1.5 ms per context, more than the context itself, so :func:`shims_for`
includes a part only when the codec's source mentions its name (``Buffer``, ``atob``/``btoa``, ``.at(``,
``findLast``, ``hasOwn``). A codec that reaches one only through a computed name finds it undefined,
as it would on The Things Stack.
"""

from __future__ import annotations

POLYFILLS_JS = r"""
  function method(obj, name, fn) {
    if (typeof obj[name] !== 'function') {
      defineProperty(obj, name, { value: fn, writable: true, configurable: true, enumerable: false });
    }
  }
  function relativeAt(index) {
    var len = this.length, k = Math.trunc(index) || 0;
    if (k < 0) k += len;
    return k < 0 || k >= len ? undefined : this[k];
  }
  function findLast(pred, thisArg) {
    for (var i = this.length - 1; i >= 0; i--) if (pred.call(thisArg, this[i], i, this)) return this[i];
    return undefined;
  }
  function findLastIndex(pred, thisArg) {
    for (var i = this.length - 1; i >= 0; i--) if (pred.call(thisArg, this[i], i, this)) return i;
    return -1;
  }
  var TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
  method(Array.prototype, 'at', relativeAt);
  method(String.prototype, 'at', relativeAt);
  method(TypedArrayProto, 'at', relativeAt);
  method(Array.prototype, 'findLast', findLast);
  method(Array.prototype, 'findLastIndex', findLastIndex);
  method(TypedArrayProto, 'findLast', findLast);
  method(TypedArrayProto, 'findLastIndex', findLastIndex);
  method(Object, 'hasOwn', function hasOwn(obj, key) { return Object.prototype.hasOwnProperty.call(obj, key); });

"""

CODING_JS = r"""
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  var B64_INDEX = {};
  for (var i = 0; i < 64; i++) B64_INDEX[B64.charAt(i)] = i;
  B64_INDEX['-'] = 62;
  B64_INDEX['_'] = 63;

  function invalidCharacter(message) {
    var err = new Error(message);
    err.name = 'InvalidCharacterError';
    return err;
  }

  // Forgiving base64 (WHATWG): whitespace ignored, padding optional; URL-safe letters accepted too.
  function base64ToBytes(text, strict) {
    var clean = String(text).replace(/[\t\n\f\r ]+/g, '');
    if (clean.length % 4 === 0) clean = clean.replace(/==?$/, '');
    if (clean.length % 4 === 1 || /[^A-Za-z0-9+/\-_]/.test(clean)) {
      if (strict) throw invalidCharacter('atob: the string is not valid base64');
      clean = clean.replace(/[^A-Za-z0-9+/\-_]/g, '');
    }
    var out = [], bits = 0, value = 0;
    for (var j = 0; j < clean.length; j++) {
      value = (value << 6) | B64_INDEX[clean.charAt(j)];
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((value >> bits) & 0xff);
      }
    }
    return out;
  }

  function bytesToBase64(bytes) {
    var out = '', n = bytes.length, j;
    for (j = 0; j + 2 < n; j += 3) {
      var t = (bytes[j] << 16) | (bytes[j + 1] << 8) | bytes[j + 2];
      out += B64.charAt(t >> 18) + B64.charAt((t >> 12) & 63) + B64.charAt((t >> 6) & 63) + B64.charAt(t & 63);
    }
    if (n - j === 1) {
      out += B64.charAt(bytes[j] >> 2) + B64.charAt((bytes[j] & 3) << 4) + '==';
    } else if (n - j === 2) {
      var u = (bytes[j] << 8) | bytes[j + 1];
      out += B64.charAt(u >> 10) + B64.charAt((u >> 4) & 63) + B64.charAt((u & 15) << 2) + '=';
    }
    return out;
  }

  function utf8Encode(text) {
    var out = [];
    for (var j = 0; j < text.length; j++) {
      var c = text.codePointAt(j);
      if (c > 0xffff) j++;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return out;
  }

  function utf8Decode(bytes, start, end) {
    var out = '', j = start;
    while (j < end) {
      var b = bytes[j++], c;
      if (b < 0x80) c = b;
      else if (b >= 0xc0 && b < 0xe0 && j < end) c = ((b & 31) << 6) | (bytes[j++] & 63);
      else if (b >= 0xe0 && b < 0xf0 && j + 1 < end) {
        c = ((b & 15) << 12) | ((bytes[j++] & 63) << 6) | (bytes[j++] & 63);
      }
      else if (b >= 0xf0 && j + 2 < end) {
        c = ((b & 7) << 18) | ((bytes[j++] & 63) << 12) | ((bytes[j++] & 63) << 6) | (bytes[j++] & 63);
      } else c = 0xfffd;
      out += String.fromCodePoint(c);
    }
    return out;
  }

  function hexToBytes(text) {
    var out = [];
    for (var j = 0; j + 1 < text.length; j += 2) {
      var v = parseInt(text.substr(j, 2), 16);
      if (v !== v) break;  // Node stops at the first pair that is not hex
      out.push(v);
    }
    return out;
  }

"""

ATOB_JS = r"""
  function atob(text) {
    if (arguments.length === 0) throw new TypeError('atob: 1 argument required');
    var bytes = base64ToBytes(text, true), out = '';
    for (var j = 0; j < bytes.length; j++) out += String.fromCharCode(bytes[j]);
    return out;
  }

  function btoa(text) {
    var s = String(text), bytes = [];
    for (var j = 0; j < s.length; j++) {
      var c = s.charCodeAt(j);
      if (c > 255) throw invalidCharacter('btoa: the string has characters outside Latin-1');
      bytes.push(c);
    }
    return bytesToBase64(bytes);
  }

  install('atob', atob);
  install('btoa', btoa);
"""

BUFFER_JS = r"""
  function viewOf(buf) { return new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }

  function checkOffset(buf, offset, size) {
    if (offset === undefined) offset = 0;
    if (typeof offset !== 'number' || offset % 1 !== 0 || offset < 0 || offset + size > buf.length) {
      throw new RangeError('The value of "offset" is out of range. It must be >= 0 and <= ' +
        (buf.length - size) + '. Received ' + offset);
    }
    return offset;
  }

  class Buffer extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === 'string') {
        var enc = String(encodingOrOffset || 'utf8').toLowerCase();
        var bytes;
        if (enc === 'base64' || enc === 'base64url') bytes = base64ToBytes(value, false);
        else if (enc === 'hex') bytes = hexToBytes(value);
        else if (enc === 'utf8' || enc === 'utf-8') bytes = utf8Encode(value);
        else if (enc === 'ascii' || enc === 'latin1' || enc === 'binary') {
          bytes = [];
          for (var j = 0; j < value.length; j++) bytes.push(value.charCodeAt(j) & 0xff);
        } else throw new TypeError('Unknown encoding: ' + encodingOrOffset);
        return Buffer.fromBytes(bytes);
      }
      if (value instanceof ArrayBuffer) {
        var off = encodingOrOffset || 0;
        return new Buffer(value, off, length === undefined ? value.byteLength - off : length);
      }
      if (value !== null && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)) {
        return Buffer.fromBytes(value.data);
      }
      if (value !== null && typeof value === 'object' && typeof value.length === 'number') {
        return Buffer.fromBytes(value);
      }
      throw new TypeError('Buffer.from: unsupported argument');
    }
    static fromBytes(bytes) {
      var buf = new Buffer(bytes.length);
      for (var j = 0; j < bytes.length; j++) buf[j] = bytes[j] & 0xff;
      return buf;
    }
    static alloc(size, fill) {
      var buf = new Buffer(size);
      if (fill !== undefined) buf.fill(typeof fill === 'number' ? fill & 0xff : 0);
      return buf;
    }
    static allocUnsafe(size) { return new Buffer(size); }
    static isBuffer(value) { return value instanceof Buffer; }
    static byteLength(value, encoding) {
      return typeof value === 'string' ? Buffer.from(value, encoding).length : value.byteLength;
    }
    static concat(list, total) {
      var size = 0, j, k, pos = 0;
      for (j = 0; j < list.length; j++) size += list[j].length;
      var out = new Buffer(total === undefined ? size : total);
      for (j = 0; j < list.length; j++) {
        for (k = 0; k < list[j].length && pos < out.length; k++) out[pos++] = list[j][k];
      }
      return out;
    }
    slice(start, end) { return this.subarray(start, end); }
    equals(other) {
      if (this.length !== other.length) return false;
      for (var j = 0; j < this.length; j++) if (this[j] !== other[j]) return false;
      return true;
    }
    toString(encoding, start, end) {
      var enc = String(encoding || 'utf8').toLowerCase();
      var s = start || 0, e = end === undefined ? this.length : Math.min(end, this.length), out = '', j;
      if (enc === 'hex') {
        for (j = s; j < e; j++) out += (this[j] < 16 ? '0' : '') + this[j].toString(16);
        return out;
      }
      if (enc === 'base64') return bytesToBase64(this.subarray(s, e));
      if (enc === 'ascii' || enc === 'latin1' || enc === 'binary') {
        for (j = s; j < e; j++) out += String.fromCharCode(enc === 'ascii' ? this[j] & 0x7f : this[j]);
        return out;
      }
      return utf8Decode(this, s, e);
    }
    toJSON() { return { type: 'Buffer', data: Array.prototype.slice.call(this) }; }
    readUInt8(o) { o = checkOffset(this, o, 1); return this[o]; }
    readInt8(o) { o = checkOffset(this, o, 1); return (this[o] << 24) >> 24; }
    readUInt16LE(o) { o = checkOffset(this, o, 2); return this[o] | (this[o + 1] << 8); }
    readUInt16BE(o) { o = checkOffset(this, o, 2); return (this[o] << 8) | this[o + 1]; }
    readInt16LE(o) { return (this.readUInt16LE(o) << 16) >> 16; }
    readInt16BE(o) { return (this.readUInt16BE(o) << 16) >> 16; }
    readUInt32LE(o) {
      o = checkOffset(this, o, 4);
      return (this[o] | (this[o + 1] << 8) | (this[o + 2] << 16)) + this[o + 3] * 0x1000000;
    }
    readUInt32BE(o) {
      o = checkOffset(this, o, 4);
      return this[o] * 0x1000000 + ((this[o + 1] << 16) | (this[o + 2] << 8) | this[o + 3]);
    }
    readInt32LE(o) { return this.readUInt32LE(o) | 0; }
    readInt32BE(o) { return this.readUInt32BE(o) | 0; }
    readUIntLE(o, n) {
      o = checkOffset(this, o, n);
      var v = 0;
      for (var j = n - 1; j >= 0; j--) v = v * 256 + this[o + j];
      return v;
    }
    readUIntBE(o, n) {
      o = checkOffset(this, o, n);
      var v = 0;
      for (var j = 0; j < n; j++) v = v * 256 + this[o + j];
      return v;
    }
    readIntLE(o, n) { var v = this.readUIntLE(o, n), m = Math.pow(2, 8 * n - 1); return v >= m ? v - 2 * m : v; }
    readIntBE(o, n) { var v = this.readUIntBE(o, n), m = Math.pow(2, 8 * n - 1); return v >= m ? v - 2 * m : v; }
    readFloatLE(o) { return viewOf(this).getFloat32(checkOffset(this, o, 4), true); }
    readFloatBE(o) { return viewOf(this).getFloat32(checkOffset(this, o, 4), false); }
    readDoubleLE(o) { return viewOf(this).getFloat64(checkOffset(this, o, 8), true); }
    readDoubleBE(o) { return viewOf(this).getFloat64(checkOffset(this, o, 8), false); }
    writeUInt8(v, o) { o = checkOffset(this, o, 1); this[o] = v; return o + 1; }
    writeInt8(v, o) { return this.writeUInt8(v & 0xff, o); }
    writeUInt16LE(v, o) { o = checkOffset(this, o, 2); this[o] = v; this[o + 1] = v >>> 8; return o + 2; }
    writeUInt16BE(v, o) { o = checkOffset(this, o, 2); this[o] = v >>> 8; this[o + 1] = v; return o + 2; }
    writeInt16LE(v, o) { return this.writeUInt16LE(v & 0xffff, o); }
    writeInt16BE(v, o) { return this.writeUInt16BE(v & 0xffff, o); }
    writeUInt32LE(v, o) {
      o = checkOffset(this, o, 4);
      this[o] = v; this[o + 1] = v >>> 8; this[o + 2] = v >>> 16; this[o + 3] = v >>> 24;
      return o + 4;
    }
    writeUInt32BE(v, o) {
      o = checkOffset(this, o, 4);
      this[o] = v >>> 24; this[o + 1] = v >>> 16; this[o + 2] = v >>> 8; this[o + 3] = v;
      return o + 4;
    }
    writeInt32LE(v, o) { return this.writeUInt32LE(v >>> 0, o); }
    writeInt32BE(v, o) { return this.writeUInt32BE(v >>> 0, o); }
  }
  var proto = Buffer.prototype;
  var aliases = ['readUInt8', 'readUInt16LE', 'readUInt16BE', 'readUInt32LE', 'readUInt32BE', 'readUIntLE',
                 'readUIntBE', 'writeUInt8', 'writeUInt16LE', 'writeUInt16BE', 'writeUInt32LE', 'writeUInt32BE'];
  for (var a = 0; a < aliases.length; a++) {  // Node's lowercase-int spellings (readUint8, ...)
    var alias = { value: proto[aliases[a]], writable: true, configurable: true };
    defineProperty(proto, aliases[a].replace('UInt', 'Uint'), alias);
  }

  install('Buffer', Buffer);
"""

_OPEN = """(function (G) {
  'use strict';
  var defineProperty = Object.defineProperty;
  function install(name, value) {
    defineProperty(G, name, { value: value, writable: true, configurable: true, enumerable: false });
  }
"""
_CLOSE = "})(globalThis);\n"


def shims_for(source: str) -> str:
    """The shim script for a codec: only the parts its source mentions, or an empty string."""
    wants_buffer = "Buffer" in source
    wants_atob = "atob" in source or "btoa" in source
    wants_polyfills = ".at(" in source or "findLast" in source or "hasOwn" in source
    parts = [
        POLYFILLS_JS if wants_polyfills else "",
        CODING_JS if wants_buffer or wants_atob else "",
        ATOB_JS if wants_atob else "",
        BUFFER_JS if wants_buffer else "",
    ]
    body = "".join(parts)
    return _OPEN + body + _CLOSE if body else ""
