/* Classic broadcasts decoded straight into table columns (see siotools/protocol/columnar.py).
 *
 * A capture holds its payloads joined in chunks with an offset array. For every row of a
 * chunk whose channel is a classic broadcast/room channel, this reads the payload
 * [uid, packet, opts] (socket.io-redis 5.x: notepack 2.x; @socket.io/redis-adapter 8.x:
 * notepack 3.x; both the msgpack subset below) and writes the row's codes (size, dialect,
 * namespace, event, uid, packet type) and, when asked, its object cells (rooms, except,
 * args, flags), with the values msgpack-python's unpackb(strict_map_key=False) gives.
 *
 * It only ever accepts what it reads exactly. Any row it is not sure of (an ext, a uint64
 * notepack may have wrapped, bad UTF-8, a key that is not hashable, nesting deeper than
 * MAX_DEPTH, trailing bytes, a shape that is not a broadcast, a payload over max_size) is
 * *declined*: its ok byte is 0 and the caller decodes it the ordinary way. Reading never
 * goes past a payload's end: every length is checked against what is left.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 256
#define MAX_KEYS 16          /* opts maps with more keys are declined (8.x writes 3) */
#define CACHED_SIZE 1024     /* identical payloads up to this size are read once */
#define PROBES 4096          /* after this many look-ups a cache that found little stops */

/* Status of a read: OK, DECLINE (not an error: the caller reads the row itself), FAIL (a
 * Python exception is set: memory). */
enum { OK = 0, DECLINE = 1, FAIL = -1 };

/* Short strings (map keys, room names, repeated values) are made once per call: equal
 * strings are immutable, so rows may share them, as msgpack-python's interned keys are
 * shared. A direct-mapped table: bounded, a miss replaces the slot's string. */
#define STR_SLOTS 1024
#define STR_CACHED 24

typedef struct {
    uint64_t hash;
    Py_ssize_t n;
    PyObject *str;
} StrSlot;

typedef struct {
    StrSlot slot[STR_SLOTS];
} StrCache;

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    StrCache *strings; /* or NULL */
} Reader;

static uint64_t fnv1a(const unsigned char *s, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A str from validated UTF-8 bytes (new reference, NULL on a Python error). */
static PyObject *make_str(StrCache *c, const unsigned char *s, Py_ssize_t n) {
    if (c == NULL || n > STR_CACHED) return PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    uint64_t h = fnv1a(s, n);
    StrSlot *e = &c->slot[h & (STR_SLOTS - 1)];
    if (e->str != NULL && e->hash == h && e->n == n) {
        Py_ssize_t len;
        const char *u = PyUnicode_AsUTF8AndSize(e->str, &len);
        if (u == NULL) return NULL;
        if (len == n && memcmp(u, s, n) == 0) return Py_NewRef(e->str);
    }
    /* Not interned here: on Python 3.12 an interned string is never freed, and values are
     * unbounded. Keys are interned by read_key, as msgpack-python interns them. */
    PyObject *v = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (v == NULL) return NULL;
    Py_XSETREF(e->str, Py_NewRef(v));
    e->hash = h;
    e->n = n;
    return v;
}

static void str_cache_free(StrCache *c) {
    if (c == NULL) return;
    for (int i = 0; i < STR_SLOTS; i++) Py_XDECREF(c->slot[i].str);
    PyMem_Free(c);
}

/* notepack.io wraps an integral double >= 2**32 into a uint64 (cf + hi/lo); one whose high
 * word is zero must stay a U64 (msgpack_codec.py): such payloads are declined. */
static const unsigned char WIDE_MARK[5] = {0xcf, 0, 0, 0, 0};

static PyObject *FIVE; /* the int 5: packet type BINARY_EVENT */

/* ------------------------------------------------------------------ primitives */

static inline int need(Reader *r, Py_ssize_t n) { return r->end - r->p >= n; }

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64(const unsigned char *p) {
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

/* Well-formed UTF-8 as Python's strict decoder takes it (Unicode Table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
static int utf8_ok(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if (c == 0xe0 && (c1 < 0xa0 || c1 > 0xbf)) return 0;
            if (c == 0xed && (c1 < 0x80 || c1 > 0x9f)) return 0;
            if ((c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80) return 0;
            i += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if (c == 0xf0 && (c1 < 0x90 || c1 > 0xbf)) return 0;
            if (c == 0xf4 && (c1 < 0x80 || c1 > 0x8f)) return 0;
            if ((c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 || (s[i + 3] & 0xc0) != 0x80)
                return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A str header: sets *n and advances past it; DECLINE when the next value is not a str. */
static int str_header(Reader *r, Py_ssize_t *n) {
    if (!need(r, 1)) return DECLINE;
    unsigned char b = *r->p;
    if ((b & 0xe0) == 0xa0) {
        *n = b & 0x1f;
        r->p += 1;
    } else if (b == 0xd9) {
        if (!need(r, 2)) return DECLINE;
        *n = r->p[1];
        r->p += 2;
    } else if (b == 0xda) {
        if (!need(r, 3)) return DECLINE;
        *n = be16(r->p + 1);
        r->p += 3;
    } else if (b == 0xdb) {
        if (!need(r, 5)) return DECLINE;
        *n = (Py_ssize_t)be32(r->p + 1);
        r->p += 5;
    } else {
        return DECLINE;
    }
    if (*n < 0 || !need(r, *n)) return DECLINE;
    return OK;
}

/* A str value: its bytes (validated UTF-8) as a span. */
static int read_str_span(Reader *r, const unsigned char **s, Py_ssize_t *n) {
    int st = str_header(r, n);
    if (st != OK) return st;
    *s = r->p;
    if (!utf8_ok(*s, *n)) return DECLINE;
    r->p += *n;
    return OK;
}

/* An array or map header: *count and *is_map; DECLINE when the next value is neither. */
static int container_header(Reader *r, Py_ssize_t *count, int *is_map) {
    if (!need(r, 1)) return DECLINE;
    unsigned char b = *r->p;
    Py_ssize_t c;
    if ((b & 0xf0) == 0x90) {
        c = b & 0x0f;
        *is_map = 0;
        r->p += 1;
    } else if ((b & 0xf0) == 0x80) {
        c = b & 0x0f;
        *is_map = 1;
        r->p += 1;
    } else if (b == 0xdc || b == 0xde) {
        if (!need(r, 3)) return DECLINE;
        c = be16(r->p + 1);
        *is_map = b == 0xde;
        r->p += 3;
    } else if (b == 0xdd || b == 0xdf) {
        if (!need(r, 5)) return DECLINE;
        c = (Py_ssize_t)be32(r->p + 1);
        *is_map = b == 0xdf;
        r->p += 5;
    } else {
        return DECLINE;
    }
    /* Every element takes at least one byte: a larger count cannot be satisfied. */
    if (c < 0 || c > (r->end - r->p) / (*is_map ? 2 : 1)) return DECLINE;
    *count = c;
    return OK;
}

static int read_value(Reader *r, PyObject **out, int depth);

/* A map key: hashable scalars only (msgpack-python raises on array/map keys). */
static int read_key(Reader *r, PyObject **out) {
    if (!need(r, 1)) return DECLINE;
    unsigned char b = *r->p;
    if ((b & 0xf0) == 0x90 || (b & 0xf0) == 0x80 || (b >= 0xdc && b <= 0xdf)) return DECLINE;
    int st = read_value(r, out, MAX_DEPTH); /* a scalar: depth does not matter */
    if (st == OK && out != NULL && PyUnicode_CheckExact(*out)) {
        PyUnicode_InternInPlace(out); /* as msgpack-python does with str keys */
    }
    return st;
}

/* One msgpack value. With out == NULL the value is checked and skipped, nothing built. */
static int read_value(Reader *r, PyObject **out, int depth) {
    if (!need(r, 1)) return DECLINE;
    const unsigned char *p = r->p;
    unsigned char b = p[0];
    PyObject *v = NULL;

    if (b <= 0x7f) { /* positive fixint */
        r->p += 1;
        if (out) v = PyLong_FromLong(b);
    } else if (b >= 0xe0) { /* negative fixint */
        r->p += 1;
        if (out) v = PyLong_FromLong((signed char)b);
    } else if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb)) {
        const unsigned char *s;
        Py_ssize_t n;
        int st = read_str_span(r, &s, &n);
        if (st != OK) return st;
        if (out) v = make_str(r->strings, s, n);
    } else if ((b & 0xf0) == 0x90 || (b & 0xf0) == 0x80 || (b >= 0xdc && b <= 0xdf)) {
        Py_ssize_t count;
        int is_map;
        if (depth <= 0) return DECLINE;
        int st = container_header(r, &count, &is_map);
        if (st != OK) return st;
        if (!is_map) {
            if (out) {
                v = PyList_New(count);
                if (v == NULL) return FAIL;
            }
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *item = NULL;
                st = read_value(r, out ? &item : NULL, depth - 1);
                if (st != OK) {
                    Py_XDECREF(v);
                    return st;
                }
                if (out) PyList_SET_ITEM(v, i, item);
            }
        } else {
            if (out) {
                v = PyDict_New();
                if (v == NULL) return FAIL;
            }
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *key = NULL, *val = NULL;
                st = read_key(r, out ? &key : NULL);
                if (st == OK) st = read_value(r, out ? &val : NULL, depth - 1);
                if (st == OK && out) {
                    if (PyDict_SetItem(v, key, val) < 0) st = FAIL;
                }
                Py_XDECREF(key);
                Py_XDECREF(val);
                if (st != OK) {
                    Py_XDECREF(v);
                    return st;
                }
            }
        }
        if (out) *out = v;
        return OK;
    } else {
        switch (b) {
        case 0xc0:
            r->p += 1;
            if (out) v = Py_NewRef(Py_None);
            break;
        case 0xc2:
            r->p += 1;
            if (out) v = Py_NewRef(Py_False);
            break;
        case 0xc3:
            r->p += 1;
            if (out) v = Py_NewRef(Py_True);
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6: { /* bin 8/16/32 */
            Py_ssize_t h = b == 0xc4 ? 2 : b == 0xc5 ? 3 : 5, n;
            if (!need(r, h)) return DECLINE;
            n = b == 0xc4 ? p[1] : b == 0xc5 ? be16(p + 1) : (Py_ssize_t)be32(p + 1);
            if (n < 0 || r->end - p - h < n) return DECLINE;
            r->p += h + n;
            if (out) v = PyBytes_FromStringAndSize((const char *)p + h, n);
            break;
        }
        case 0xca: { /* float 32 */
            if (!need(r, 5)) return DECLINE;
            uint32_t u = be32(p + 1);
            float f;
            memcpy(&f, &u, 4);
            r->p += 5;
            if (out) v = PyFloat_FromDouble((double)f);
            break;
        }
        case 0xcb: { /* float 64 */
            if (!need(r, 9)) return DECLINE;
            uint64_t u = be64(p + 1);
            double d;
            memcpy(&d, &u, 8);
            r->p += 9;
            if (out) v = PyFloat_FromDouble(d);
            break;
        }
        case 0xcc:
            if (!need(r, 2)) return DECLINE;
            r->p += 2;
            if (out) v = PyLong_FromLong(p[1]);
            break;
        case 0xcd:
            if (!need(r, 3)) return DECLINE;
            r->p += 3;
            if (out) v = PyLong_FromLong(be16(p + 1));
            break;
        case 0xce:
            if (!need(r, 5)) return DECLINE;
            r->p += 5;
            if (out) v = PyLong_FromUnsignedLong(be32(p + 1));
            break;
        case 0xcf:
            if (!need(r, 9)) return DECLINE;
            if (be32(p + 1) == 0) return DECLINE; /* maybe a wrapped double (see WIDE_MARK) */
            r->p += 9;
            if (out) v = PyLong_FromUnsignedLongLong(be64(p + 1));
            break;
        case 0xd0:
            if (!need(r, 2)) return DECLINE;
            r->p += 2;
            if (out) v = PyLong_FromLong((int8_t)p[1]);
            break;
        case 0xd1:
            if (!need(r, 3)) return DECLINE;
            r->p += 3;
            if (out) v = PyLong_FromLong((int16_t)be16(p + 1));
            break;
        case 0xd2:
            if (!need(r, 5)) return DECLINE;
            r->p += 5;
            if (out) v = PyLong_FromLong((int32_t)be32(p + 1));
            break;
        case 0xd3:
            if (!need(r, 9)) return DECLINE;
            r->p += 9;
            if (out) v = PyLong_FromLongLong((int64_t)be64(p + 1));
            break;
        default: /* exts (flavor-specific, see msgpack_codec.py) and 0xc1: the slow path */
            return DECLINE;
        }
    }
    if (out) {
        if (v == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                return DECLINE;
            }
            return FAIL;
        }
        *out = v;
    }
    return OK;
}

/* ------------------------------------------------------------------ columns */

/* The code of a value in an Interned column (its index dict and values list), added when
 * new: what Interned.code does for a hashable value. */
static int code_obj(PyObject *index, PyObject *values, PyObject *v, int32_t *code) {
    PyObject *got = PyDict_GetItemWithError(index, v);
    long k;
    if (got != NULL) {
        k = PyLong_AsLong(got);
        if (k == -1 && PyErr_Occurred()) return FAIL;
    } else if (PyErr_Occurred()) {
        return FAIL;
    } else {
        k = (long)PyList_GET_SIZE(values);
        PyObject *num = PyLong_FromLong(k);
        if (num == NULL) return FAIL;
        int bad = PyDict_SetItem(index, v, num) < 0 || PyList_Append(values, v) < 0;
        Py_DECREF(num);
        if (bad) return FAIL;
    }
    if (k > INT32_MAX || k < -1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct values for an int32 code");
        return FAIL;
    }
    *code = (int32_t)k;
    return OK;
}

typedef struct {
    PyObject *index;  /* dict value -> int code (Interned.index) */
    PyObject *values; /* list of values (Interned.values) */
    const unsigned char *last;
    Py_ssize_t last_n;
    int32_t last_code;
} Column;

/* The code of a str given by its bytes (the same bytes as the last row: the same code). */
static int code_str(Column *c, const unsigned char *s, Py_ssize_t n, int32_t *code) {
    if (c->last != NULL && c->last_n == n && memcmp(c->last, s, n) == 0) {
        *code = c->last_code;
        return OK;
    }
    PyObject *v = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (v == NULL) return FAIL; /* validated already: only memory fails here */
    int st = code_obj(c->index, c->values, v, code);
    Py_DECREF(v);
    if (st != OK) return st;
    c->last = s;
    c->last_n = n;
    c->last_code = *code;
    return OK;
}

/* One of two values, coded when first used (the dialect: a category only once seen). */
typedef struct {
    PyObject *index, *values;
    PyObject *choice[2];
    int32_t code[2];
} Choice;

static int choice_code(Choice *c, int which, int32_t *code) {
    if (c->code[which] == INT32_MIN) {
        int st = code_obj(c->index, c->values, c->choice[which], &c->code[which]);
        if (st != OK) {
            c->code[which] = INT32_MIN;
            return st;
        }
    }
    *code = c->code[which];
    return OK;
}

typedef struct {
    int32_t dialect, event, uid, type;
    PyObject *rooms, *except, *args, *flags; /* new references, or NULL */
} Row;

static void row_clear(Row *row) {
    Py_CLEAR(row->rooms);
    Py_CLEAR(row->except);
    Py_CLEAR(row->args);
    Py_CLEAR(row->flags);
}

static inline int span_is(const unsigned char *s, Py_ssize_t n, const char *lit, Py_ssize_t m) {
    return n == m && memcmp(s, lit, m) == 0;
}

/* One payload [uid, packet, opts], as siotools.protocol.wire.broadcast_parts reads it and
 * the sniffer flattens it (columns.py). */
static int read_broadcast(Reader *r, int objects, Choice *dialects, const int32_t type_codes[2],
                          Column *uids, Column *events, Row *row) {
    const unsigned char *s;
    Py_ssize_t n, count;
    int is_map, st;

    if (!need(r, 1) || *r->p != 0x93) return DECLINE;
    r->p += 1;

    /* uid */
    if ((st = read_str_span(r, &s, &n)) != OK) return st;
    const unsigned char *uid_s = s;
    Py_ssize_t uid_n = n;

    /* packet: its last "data" (an array, non-empty) and last "type" */
    if ((st = container_header(r, &count, &is_map)) != OK) return st;
    if (!is_map) return DECLINE;
    const unsigned char *data_at = NULL, *type_at = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        int key_data = 0, key_type = 0;
        if (need(r, 1) && ((*r->p & 0xe0) == 0xa0 || (*r->p >= 0xd9 && *r->p <= 0xdb))) {
            if ((st = read_str_span(r, &s, &n)) != OK) return st;
            key_data = span_is(s, n, "data", 4);
            key_type = span_is(s, n, "type", 4);
        } else if ((st = read_key(r, NULL)) != OK) {
            return st;
        }
        const unsigned char *at = r->p;
        if ((st = read_value(r, NULL, MAX_DEPTH)) != OK) return st;
        if (key_data) data_at = at;
        if (key_type) type_at = at;
    }
    if (data_at == NULL) return DECLINE; /* no data: the row reader gives None / [] */

    /* opts: distinct keys (all str, compared by their bytes), the last rooms/except/flags */
    if ((st = container_header(r, &count, &is_map)) != OK) return st;
    if (!is_map || count > MAX_KEYS) return DECLINE;
    const unsigned char *key_s[MAX_KEYS];
    Py_ssize_t key_n[MAX_KEYS];
    Py_ssize_t distinct = 0;
    const unsigned char *rooms_at = NULL, *except_at = NULL, *flags_at = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if ((st = read_str_span(r, &s, &n)) != OK) return st; /* a non-str key: declined */
        int seen = 0;
        for (Py_ssize_t j = 0; j < distinct; j++) {
            if (key_n[j] == n && memcmp(key_s[j], s, n) == 0) {
                seen = 1;
                break;
            }
        }
        if (!seen) {
            key_s[distinct] = s;
            key_n[distinct] = n;
            distinct++;
        }
        const unsigned char *at = r->p;
        if ((st = read_value(r, NULL, MAX_DEPTH)) != OK) return st;
        if (span_is(s, n, "rooms", 5)) rooms_at = at;
        else if (span_is(s, n, "except", 6)) except_at = at;
        else if (span_is(s, n, "flags", 5)) flags_at = at;
    }
    if (r->p != r->end) return DECLINE; /* trailing bytes: an error for notepack too */

    /* socket.io-redis 5.x writes {rooms, flags} or {except, rooms, flags}; 8.x always
     * writes except, after rooms (wire.broadcast_parts). */
    int legacy = distinct == 2 || (distinct > 0 && span_is(key_s[0], key_n[0], "except", 6));

    /* type == 5: BINARY_EVENT (compared as Python compares, 5.0 included) */
    int binary = 0;
    if (type_at != NULL) {
        Reader tr = {type_at, r->end, NULL};
        PyObject *t = NULL;
        if ((st = read_value(&tr, &t, MAX_DEPTH)) != OK) return st;
        binary = PyObject_RichCompareBool(t, FIVE, Py_EQ);
        Py_DECREF(t);
        if (binary < 0) return FAIL;
    }
    row->type = type_codes[binary ? 1 : 0];

    /* data: [event, *args]; the event a str */
    Reader dr = {data_at, r->end, r->strings};
    if ((st = container_header(&dr, &count, &is_map)) != OK) return st;
    if (is_map || count == 0) return DECLINE;
    if ((st = read_str_span(&dr, &s, &n)) != OK) return st; /* a non-str event: declined */
    const unsigned char *ev_s = s;
    Py_ssize_t ev_n = n;

    if (objects) {
        row->args = PyList_New(count - 1);
        if (row->args == NULL) return FAIL;
        for (Py_ssize_t i = 1; i < count; i++) {
            PyObject *item = NULL;
            if ((st = read_value(&dr, &item, MAX_DEPTH)) != OK) return st;
            PyList_SET_ITEM(row->args, i - 1, item);
        }
        const unsigned char *at[3] = {rooms_at, except_at, flags_at};
        PyObject **slot[3] = {&row->rooms, &row->except, &row->flags};
        for (int k = 0; k < 3; k++) {
            PyObject *v = NULL;
            if (at[k] != NULL) {
                Reader vr = {at[k], r->end, r->strings};
                if ((st = read_value(&vr, &v, MAX_DEPTH)) != OK) return st;
                if ((k < 2 && !PyList_CheckExact(v)) || (k == 2 && !PyDict_CheckExact(v)))
                    Py_CLEAR(v); /* the row reader's `rm if type(rm) is list else []` */
            }
            if (v == NULL) v = k < 2 ? PyList_New(0) : PyDict_New();
            if (v == NULL) return FAIL;
            *slot[k] = v;
        }
    }
    if ((st = code_str(events, ev_s, ev_n, &row->event)) != OK) return st;
    if ((st = code_str(uids, uid_s, uid_n, &row->uid)) != OK) return st;
    return choice_code(dialects, legacy, &row->dialect);
}

static int column_arg(PyObject *pair, Column *c, const char *what) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
        !PyList_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_Format(PyExc_TypeError, "%s must be a (dict, list) pair", what);
        return -1;
    }
    c->index = PyTuple_GET_ITEM(pair, 0);
    c->values = PyTuple_GET_ITEM(pair, 1);
    c->last = NULL;
    c->last_n = 0;
    c->last_code = 0;
    return 0;
}

PyDoc_STRVAR(broadcast_columns_doc,
"broadcast_columns(data, offsets, first, channel_codes, sharded, channel_fast, channel_nsp,\n"
"                  max_size, dialect_values, dialect_column, type_codes, uid_column,\n"
"                  event_column, objects)\n"
"--\n\n"
"Decode the classic broadcasts among rows into columns; see siotools.protocol.columnar.");

static PyObject *broadcast_columns(PyObject *self, PyObject *args) {
    Py_buffer data = {0}, offsets = {0}, chan = {0}, sharded = {0}, fast = {0}, nsp = {0};
    Py_ssize_t first, max_size;
    int ev_type, bin_type, objects;
    PyObject *cur_value, *leg_value, *dialect_pair, *uid_pair, *event_pair;
    PyObject *result = NULL, *ok = NULL, *codes = NULL;
    PyObject *lists[4] = {NULL, NULL, NULL, NULL};
    int32_t *table = NULL;
    StrCache *strings = NULL;

    if (!PyArg_ParseTuple(args, "y*y*ny*y*y*y*n(OO)O(ii)OOp", &data, &offsets, &first, &chan,
                          &sharded, &fast, &nsp, &max_size, &cur_value, &leg_value,
                          &dialect_pair, &ev_type, &bin_type, &uid_pair, &event_pair, &objects))
        return NULL;

    Column uids, events, dialect_col;
    if (column_arg(uid_pair, &uids, "uid_column") < 0 ||
        column_arg(event_pair, &events, "event_column") < 0 ||
        column_arg(dialect_pair, &dialect_col, "dialect_column") < 0)
        goto done;
    Choice dialects = {dialect_col.index, dialect_col.values, {cur_value, leg_value},
                       {INT32_MIN, INT32_MIN}};
    Py_ssize_t n = chan.len / 4;
    Py_ssize_t n_off = offsets.len / 8;
    if (chan.len % 4 || offsets.len % 8 || sharded.len != n || nsp.len % 4 || first < 0 ||
        first + n + 1 > n_off) {
        PyErr_SetString(PyExc_ValueError, "column buffers do not match");
        goto done;
    }
    const int64_t *off = (const int64_t *)offsets.buf + first;
    const uint32_t *ch = (const uint32_t *)chan.buf;
    const unsigned char *sh = (const unsigned char *)sharded.buf;
    const unsigned char *fast_of = (const unsigned char *)fast.buf;
    const int32_t *nsp_of = (const int32_t *)nsp.buf;
    Py_ssize_t n_chan = fast.len < nsp.len / 4 ? fast.len : nsp.len / 4;
    const unsigned char *base = (const unsigned char *)data.buf;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (off[i] < 0 || off[i] > data.len || (i && off[i] < off[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "offsets out of range");
            goto done;
        }
    }
    const int32_t type_codes[2] = {ev_type, bin_type};

    ok = PyBytes_FromStringAndSize(NULL, n);
    codes = PyBytes_FromStringAndSize(NULL, n * 6 * 4);
    if (ok == NULL || codes == NULL) goto done;
    unsigned char *okp = (unsigned char *)PyBytes_AS_STRING(ok);
    int32_t *col = (int32_t *)PyBytes_AS_STRING(codes);
    memset(col, 0, n * 6 * 4);
    int32_t *c_size = col, *c_dia = col + n, *c_nsp = col + 2 * n, *c_ev = col + 3 * n,
            *c_uid = col + 4 * n, *c_type = col + 5 * n;
    if (objects) {
        for (int k = 0; k < 4; k++) {
            lists[k] = PyList_New(n);
            if (lists[k] == NULL) goto done;
            for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(lists[k], i, Py_NewRef(Py_None));
        }
    }

    /* Identical payloads (typing, presence, repeated emits) are read once: an open
     * addressing table of row numbers, keyed by the payload bytes. */
    Py_ssize_t slots = 1;
    while (slots < 2 * n) slots <<= 1;
    table = PyMem_Malloc(sizeof(int32_t) * (size_t)(slots ? slots : 1));
    if (table == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < slots; i++) table[i] = -1;
    if (objects) {
        strings = PyMem_Calloc(1, sizeof(StrCache));
        if (strings == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int use_cache = 1;
    Py_ssize_t probes = 0, hits = 0;

    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *p = base + off[i];
        Py_ssize_t len = (Py_ssize_t)(off[i + 1] - off[i]);
        okp[i] = 0;
        c_size[i] = len > INT32_MAX ? INT32_MAX : (int32_t)len;
        uint32_t code = ch[i];
        if (code >= (uint32_t)n_chan || !fast_of[code] || sh[i] || len == 0 || p[0] != 0x93)
            continue;
        if (max_size >= 0 && len > max_size) continue;
        Py_ssize_t slot = -1;
        if (use_cache && len <= CACHED_SIZE) {
            uint64_t h = fnv1a(p, len);
            slot = (Py_ssize_t)(h & (uint64_t)(slots - 1));
            probes++;
            while (table[slot] >= 0) {
                Py_ssize_t k = table[slot];
                if (off[k + 1] - off[k] == len && memcmp(base + off[k], p, len) == 0) break;
                slot = (slot + 1) & (slots - 1);
            }
            if (table[slot] >= 0) { /* the same payload as row k */
                Py_ssize_t k = table[slot];
                hits++;
                okp[i] = 1;
                c_dia[i] = c_dia[k];
                c_nsp[i] = nsp_of[code];
                c_ev[i] = c_ev[k];
                c_uid[i] = c_uid[k];
                c_type[i] = c_type[k];
                if (objects) {
                    for (int m = 0; m < 4; m++) {
                        PyObject *v = Py_NewRef(PyList_GET_ITEM(lists[m], k));
                        PyList_SetItem(lists[m], i, v); /* steals v, drops the None */
                    }
                }
                continue;
            }
            if (probes == PROBES && hits < PROBES / 10) use_cache = 0; /* nearly all new */
        }
        /* A wrapped uint64 mark anywhere (even inside a string) sends the payload through
         * the exact reader of msgpack_codec.py, as the ordinary path does. */
        if (len >= 5 && memchr(p, 0xcf, len) != NULL) {
            int wide = 0;
            for (Py_ssize_t j = 0; j + 5 <= len; j++) {
                if (p[j] == 0xcf && memcmp(p + j, WIDE_MARK, 5) == 0) {
                    wide = 1;
                    break;
                }
            }
            if (wide) continue;
        }
        Reader r = {p, p + len, strings};
        Row row = {0, 0, 0, 0, NULL, NULL, NULL, NULL};
        int st = read_broadcast(&r, objects, &dialects, type_codes, &uids, &events, &row);
        if (st == FAIL) {
            row_clear(&row);
            goto done;
        }
        if (st == DECLINE) {
            row_clear(&row);
            continue;
        }
        okp[i] = 1;
        c_dia[i] = row.dialect;
        c_nsp[i] = nsp_of[code];
        c_ev[i] = row.event;
        c_uid[i] = row.uid;
        c_type[i] = row.type;
        if (objects) {
            /* list order: rooms, except, args, flags (columns.OBJECT_COLUMNS) */
            PyList_SetItem(lists[0], i, row.rooms); /* each steals its reference */
            PyList_SetItem(lists[1], i, row.except);
            PyList_SetItem(lists[2], i, row.args);
            PyList_SetItem(lists[3], i, row.flags);
        }
        if (slot >= 0 && use_cache) table[slot] = (int32_t)i;
    }

    if (objects) {
        result = Py_BuildValue("(OOOOOO)", ok, codes, lists[0], lists[1], lists[2], lists[3]);
    } else {
        result = Py_BuildValue("(OOOOOO)", ok, codes, Py_None, Py_None, Py_None, Py_None);
    }

done:
    PyMem_Free(table);
    str_cache_free(strings);
    Py_XDECREF(ok);
    Py_XDECREF(codes);
    for (int k = 0; k < 4; k++) Py_XDECREF(lists[k]);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&chan);
    PyBuffer_Release(&sharded);
    PyBuffer_Release(&fast);
    PyBuffer_Release(&nsp);
    return result;
}

static PyMethodDef methods[] = {
    {"broadcast_columns", broadcast_columns, METH_VARARGS, broadcast_columns_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "siotools.protocol._columns",
    "Classic broadcasts decoded straight into table columns.", -1, methods,
};

PyMODINIT_FUNC PyInit__columns(void) {
    FIVE = PyLong_FromLong(5);
    if (FIVE == NULL) return NULL;
    return PyModule_Create(&module);
}
