/* rx.c: Go RE2-dialect regexes on PCRE2 (see rx.h).
 * Uses PCRE2 (the only includer of pcre2.h), buf.h and goquote.h (UTF-8
 * decoding). Must never call Lua or log: callers report the errors.
 *
 * How: the pattern is parsed with Go's regexp/syntax rules (a port of its
 * parse loop, Perl flags) and re-emitted as a PCRE2 pattern in which every
 * literal is \x{..}, every class is explicit, groups are all unnamed (names
 * live in our own table, so Go names PCRE2 refuses, like "1a", work), and
 * Go's ASCII-only \d \s \w are spelled out. Anything Go rejects fails here
 * with Go's message, so PCRE2 only ever sees constructs RE2 also has.
 *
 * Compile options: UTF (Go patterns and subjects are UTF-8), no UCP: in Go
 * \b \B, \d \s \w and the POSIX classes are ASCII while (?i) folds all of
 * Unicode; PCRE2 in UTF mode without UCP does exactly that. DOLLAR_ENDONLY
 * (Go's $ without (?m) is \z), ALT_CIRCUMFLEX ((?m)^ also matches after a
 * final \n, as Go), MATCH_INVALID_UTF (subjects need not be valid UTF-8),
 * newline LF only.
 *
 * Known differences left: PCRE2 backtracks (a pathological pattern can hit
 * the match limit: rx_search returns -1 where Go would finish); Go's
 * "expression too large" program-size limit is not applied; (?i) does not widen
 * \p{Lu}/\p{Ll} in PCRE2 as it does in Go; \P{C} inside a class includes
 * unassigned code points. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rx.h"
#include "buf.h"
#include "goquote.h"
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 1000              /* Go's maxHeight for nesting */
#define MAX_OUT (1u << 20)          /* translated pattern size bound */

struct rx_name {
    char *name;
    int group;
};

struct rx {
    pcre2_code *code;
    char *pattern;                  /* source, NUL-terminated */
    char *translated;
    int ncap;
    struct rx_name *names;
    int nnames;
};

/* Translation state. Offsets into out are kept for the item a repetition
 * operator would apply to ("the atom"). */
struct tr {
    const char *p;
    size_t len, pos;
    struct buf out;
    int ncap;
    struct rx_name *names;
    int nnames, capnames;
    int depth;
    size_t open_at[MAX_DEPTH];      /* out offset of each open group */
    int have_atom;                  /* a repeatable item precedes */
    size_t atom_start, atom_end;    /* the atom's text in out; flag groups
                                     * (?i) may follow it up to out.len */
    int atom_wrap;                  /* needs (?:) before a quantifier */
    size_t last_rep;                /* pattern offset of the repeat operator
                                     * just before, or RX_UNSET */
    /* Go's repeatIsValid(re, 1000): the smallest budget each item needs
     * (nested {n,m} counts multiply). need_acc[d]: finished items of the
     * group open at depth d; need_cur: the current atom. */
    long need_acc[MAX_DEPTH + 1];
    long need_cur;
    char *err;
    size_t errlen;
};

static const char *const go_categories[] = {
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M",
    "Mc", "Me", "Mn", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf",
    "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
};

/* Go 1.22 unicode.Scripts (Unicode 15.0). */
static const char *const go_scripts[] = {
    "Adlam", "Ahom", "Anatolian_Hieroglyphs", "Arabic", "Armenian", "Avestan",
    "Balinese", "Bamum", "Bassa_Vah", "Batak", "Bengali", "Bhaiksuki",
    "Bopomofo", "Brahmi", "Braille", "Buginese", "Buhid",
    "Canadian_Aboriginal", "Carian", "Caucasian_Albanian", "Chakma", "Cham",
    "Cherokee", "Chorasmian", "Common", "Coptic", "Cuneiform", "Cypriot",
    "Cypro_Minoan", "Cyrillic", "Deseret", "Devanagari", "Dives_Akuru",
    "Dogra", "Duployan", "Egyptian_Hieroglyphs", "Elbasan", "Elymaic",
    "Ethiopic", "Georgian", "Glagolitic", "Gothic", "Grantha", "Greek",
    "Gujarati", "Gunjala_Gondi", "Gurmukhi", "Han", "Hangul",
    "Hanifi_Rohingya", "Hanunoo", "Hatran", "Hebrew", "Hiragana",
    "Imperial_Aramaic", "Inherited", "Inscriptional_Pahlavi",
    "Inscriptional_Parthian", "Javanese", "Kaithi", "Kannada", "Katakana",
    "Kawi", "Kayah_Li", "Kharoshthi", "Khitan_Small_Script", "Khmer", "Khojki",
    "Khudawadi", "Lao", "Latin", "Lepcha", "Limbu", "Linear_A", "Linear_B",
    "Lisu", "Lycian", "Lydian", "Mahajani", "Makasar", "Malayalam", "Mandaic",
    "Manichaean", "Marchen", "Masaram_Gondi", "Medefaidrin", "Meetei_Mayek",
    "Mende_Kikakui", "Meroitic_Cursive", "Meroitic_Hieroglyphs", "Miao",
    "Modi", "Mongolian", "Mro", "Multani", "Myanmar", "Nabataean",
    "Nag_Mundari", "Nandinagari", "New_Tai_Lue", "Newa", "Nko", "Nushu",
    "Nyiakeng_Puachue_Hmong", "Ogham", "Ol_Chiki", "Old_Hungarian",
    "Old_Italic", "Old_North_Arabian", "Old_Permic", "Old_Persian",
    "Old_Sogdian", "Old_South_Arabian", "Old_Turkic", "Old_Uyghur", "Oriya",
    "Osage", "Osmanya", "Pahawh_Hmong", "Palmyrene", "Pau_Cin_Hau", "Phags_Pa",
    "Phoenician", "Psalter_Pahlavi", "Rejang", "Runic", "Samaritan",
    "Saurashtra", "Sharada", "Shavian", "Siddham", "SignWriting", "Sinhala",
    "Sogdian", "Sora_Sompeng", "Soyombo", "Sundanese", "Syloti_Nagri",
    "Syriac", "Tagalog", "Tagbanwa", "Tai_Le", "Tai_Tham", "Tai_Viet", "Takri",
    "Tamil", "Tangsa", "Tangut", "Telugu", "Thaana", "Thai", "Tibetan",
    "Tifinagh", "Tirhuta", "Toto", "Ugaritic", "Vai", "Vithkuqi", "Wancho",
    "Warang_Citi", "Yezidi", "Yi", "Zanabazar_Square",
};

static const char *const go_posix[] = {
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower",
    "print", "punct", "space", "upper", "word", "xdigit",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* -- Errors and output ----------------------------------------------------- */

static int
fail(struct tr *t, const char *code, const char *expr, size_t exprlen)
{
    snprintf(t->err, t->errlen, "error parsing regexp: %s: `%.*s`", code,
             (int)exprlen, expr);
    return -1;
}

static int
too_large(struct tr *t)
{
    snprintf(t->err, t->errlen, "error parsing regexp: expression too large");
    return -1;
}

static int
emitn(struct tr *t, const char *s, size_t n)
{
    return buf_add(&t->out, s, n) < 0 ? too_large(t) : 0;
}

static int
emit(struct tr *t, const char *s)
{
    return emitn(t, s, strlen(s));
}

/* A code point as a PCRE2 literal: alphanumerics as they are, everything
 * else as \x{..}, so no byte of the output has a meaning we did not mean. */
static int
emit_cp(struct tr *t, uint32_t cp)
{
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
        (cp >= 'A' && cp <= 'Z'))
        return buf_addc(&t->out, (char)cp) < 0 ? too_large(t) : 0;
    return buf_addf(&t->out, "\\x{%x}", (unsigned)cp) < 0 ? too_large(t) : 0;
}

/* A new item starts: the previous one is final for the budget check. */
static void
need_next(struct tr *t)
{
    if (t->need_cur > t->need_acc[t->depth])
        t->need_acc[t->depth] = t->need_cur;
    t->need_cur = 0;
}

static void
atom_begin(struct tr *t, int wrap)
{
    need_next(t);
    t->have_atom = 1;
    t->atom_start = t->out.len;
    t->atom_wrap = wrap;
}

static void
atom_end(struct tr *t)
{
    t->atom_end = t->out.len;
}

/* Decodes the rune at s[0..n); n == 0 gives U+FFFD of width 0, as Go's
 * nextRune on an empty string. The pattern was checked for valid UTF-8. */
static size_t
rune(const char *s, size_t n, uint32_t *cp)
{
    if (n == 0) {
        *cp = 0xFFFD;
        return 0;
    }
    return goquote_utf8_decode((const unsigned char *)s, n, cp);
}

static int
unhex(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static int
is_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

/* -- Escapes and classes (Go parseEscape, parseUnicodeClass, parseClass) --- */

/* s[0] is '\\'. Sets *cp and *used, or fails as Go does. */
static int
parse_escape(struct tr *t, const char *s, size_t n, uint32_t *cp,
             size_t *used)
{
    uint32_t c, r;
    size_t i, w;

    if (n < 2)
        return fail(t, "trailing backslash at end of expression", "", 0);
    i = 1 + rune(s + 1, n - 1, &c);
    switch (c) {
    case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        /* a single non-zero digit is a backreference: unsupported */
        if (i >= n || s[i] < '0' || s[i] > '7')
            break;
        /* fall through */
    case '0':
        r = c - '0';
        for (int k = 1; k < 3; k++) {
            if (i >= n || s[i] < '0' || s[i] > '7')
                break;
            r = r * 8 + (uint32_t)(s[i] - '0');
            i++;
        }
        *cp = r;
        *used = i;
        return 0;
    case 'x': {
        int x, y;
        if (i >= n)
            break;
        w = rune(s + i, n - i, &c);
        i += w;
        if (c == '{') {
            int nhex = 0;
            r = 0;
            for (;;) {
                if (i >= n)
                    goto bad;
                i += rune(s + i, n - i, &c);
                if (c == '}')
                    break;
                if ((x = unhex(c)) < 0)
                    goto bad;
                r = r * 16 + (uint32_t)x;
                if (r > 0x10FFFF)
                    goto bad;
                nhex++;
            }
            if (nhex == 0)
                goto bad;
            *cp = r;
            *used = i;
            return 0;
        }
        x = unhex(c);
        i += rune(s + i, n - i, &c);
        y = unhex(c);
        if (x < 0 || y < 0)
            break;
        *cp = (uint32_t)(x * 16 + y);
        *used = i;
        return 0;
    }
    case 'a': *cp = '\a'; *used = i; return 0;
    case 'f': *cp = '\f'; *used = i; return 0;
    case 'n': *cp = '\n'; *used = i; return 0;
    case 'r': *cp = '\r'; *used = i; return 0;
    case 't': *cp = '\t'; *used = i; return 0;
    case 'v': *cp = '\v'; *used = i; return 0;
    default:
        /* escaped ASCII punctuation is itself; \q and friends are not */
        if (c < 0x80 && !is_alnum(c)) {
            *cp = c;
            *used = i;
            return 0;
        }
    }
bad:
    return fail(t, "invalid escape sequence", s, i);
}

static int
known_uname(const char *name, size_t n)
{
    if (n == 3 && memcmp(name, "Any", 3) == 0)
        return 1;
    for (size_t i = 0; i < NELEM(go_categories); i++)
        if (strlen(go_categories[i]) == n &&
            memcmp(go_categories[i], name, n) == 0)
            return 1;
    for (size_t i = 0; i < NELEM(go_scripts); i++)
        if (strlen(go_scripts[i]) == n && memcmp(go_scripts[i], name, n) == 0)
            return 1;
    return 0;
}

/* \pN, \p{Name}, \PN, \P{^Name}. Returns 1 and emits when s starts one,
 * 0 when it does not, -1 on error. top: outside a class (emit a class of
 * its own where PCRE2 needs one). Go's C (Other) excludes unassigned code
 * points; PCRE2's \p{C} includes them, so C is spelled out. */
static int
unicode_class(struct tr *t, const char *s, size_t n, int top, size_t *used)
{
    int neg;
    uint32_t c;
    size_t w, seqlen, nlen;
    const char *name;

    if (n < 2 || s[0] != '\\' || (s[1] != 'p' && s[1] != 'P'))
        return 0;
    neg = s[1] == 'P';
    w = rune(s + 2, n - 2, &c);
    if (c != '{') {
        seqlen = 2 + w;
        name = s + 2;
        nlen = w;
    } else {
        const char *e = memchr(s, '}', n);
        if (!e)
            return fail(t, "invalid character class range", s, n);
        seqlen = (size_t)(e - s) + 1;
        name = s + 3;
        nlen = (size_t)(e - s) - 3;
    }
    if (nlen > 0 && name[0] == '^') {
        neg = !neg;
        name++;
        nlen--;
    }
    if (!known_uname(name, nlen))
        return fail(t, "invalid character class range", s, seqlen);
    *used = seqlen;
    if (nlen == 1 && name[0] == 'C' && (top || !neg)) {
        const char *four = "\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}";
        if (!top)
            return emit(t, four) < 0 ? -1 : 1;
        if (emit(t, neg ? "[^" : "[") < 0 || emit(t, four) < 0 ||
            emit(t, "]") < 0)
            return -1;
        return 1;
    }
    if (emit(t, neg ? "\\P{" : "\\p{") < 0 || emitn(t, name, nlen) < 0 ||
        emit(t, "}") < 0)
        return -1;
    return 1;
}

/* Go's Perl classes are ASCII: \d [0-9], \s [\t\n\f\r ], \w [0-9A-Za-z_].
 * Inside a class the negated forms are written as explicit complements. */
static const char *
perl_class(char c, int top)
{
    switch (c) {
    case 'd': return top ? "[0-9]" : "0-9";
    case 'D': return top ? "[^0-9]" : "\\x{0}-\\x{2f}\\x{3a}-\\x{10ffff}";
    case 's': return top ? "[\\t\\n\\f\\r\\x{20}]" : "\\t\\n\\f\\r\\x{20}";
    case 'S':
        return top ? "[^\\t\\n\\f\\r\\x{20}]"
                   : "\\x{0}-\\x{8}\\x{b}\\x{e}-\\x{1f}\\x{21}-\\x{10ffff}";
    case 'w': return top ? "[0-9A-Za-z_]" : "0-9A-Za-z_";
    case 'W':
        return top ? "[^0-9A-Za-z_]"
                   : "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{5b}-\\x{5e}\\x{60}"
                     "\\x{7b}-\\x{10ffff}";
    default: return NULL;
    }
}

static int
class_char(struct tr *t, const char *s, size_t n, const char *whole,
           size_t wn, uint32_t *cp, size_t *used)
{
    if (n == 0)
        return fail(t, "missing closing ]", whole, wn);
    if (s[0] == '\\')
        return parse_escape(t, s, n, cp, used);
    *used = rune(s, n, cp);
    return 0;
}

static int
parse_class(struct tr *t)
{
    const char *whole = t->p + t->pos;
    size_t wn = t->len - t->pos, i = 1;
    size_t start = t->out.len;
    int first = 1;

    need_next(t);
    if (emit(t, "[") < 0)
        return -1;
    if (i < wn && whole[i] == '^') {
        if (emit(t, "^") < 0)
            return -1;
        i++;
    }
    while (i >= wn || whole[i] != ']' || first) {
        const char *s = whole + i;
        size_t n = wn - i, used, j;
        uint32_t lo, hi;
        const char *pc;
        int r;

        first = 0;
        if (n > 2 && s[0] == '[' && s[1] == ':') {
            const char *e = NULL;
            for (size_t k = 2; k + 1 < n; k++)
                if (s[k] == ':' && s[k + 1] == ']') {
                    e = s + k;
                    break;
                }
            if (e) {
                size_t nl = (size_t)(e - s) + 2, k;
                const char *nm = s + 2;
                size_t nml = nl - 4;
                if (nml > 0 && nm[0] == '^') {
                    nm++;
                    nml--;
                }
                for (k = 0; k < NELEM(go_posix); k++)
                    if (strlen(go_posix[k]) == nml &&
                        memcmp(go_posix[k], nm, nml) == 0)
                        break;
                if (k == NELEM(go_posix))
                    return fail(t, "invalid character class range", s, nl);
                if (emitn(t, s, nl) < 0)
                    return -1;
                i += nl;
                continue;
            }
        }
        if ((r = unicode_class(t, s, n, 0, &used)) < 0)
            return -1;
        if (r > 0) {
            i += used;
            continue;
        }
        if (n >= 2 && s[0] == '\\' && (pc = perl_class(s[1], 0)) != NULL) {
            if (emit(t, pc) < 0)
                return -1;
            i += 2;
            continue;
        }
        if (class_char(t, s, n, whole, wn, &lo, &used) < 0)
            return -1;
        j = i + used;
        hi = lo;
        if (wn - j >= 2 && whole[j] == '-' && whole[j + 1] != ']') {
            j++;
            if (class_char(t, whole + j, wn - j, whole, wn, &hi, &used) < 0)
                return -1;
            j += used;
            if (hi < lo)
                return fail(t, "invalid character class range", s,
                            (size_t)(whole + j - s));
        }
        if (buf_addf(&t->out, "\\x{%x}", (unsigned)lo) < 0)
            return too_large(t);
        if (hi != lo && buf_addf(&t->out, "-\\x{%x}", (unsigned)hi) < 0)
            return too_large(t);
        i = j;
    }
    if (emit(t, "]") < 0)
        return -1;
    t->have_atom = 1;
    t->atom_start = start;
    t->atom_wrap = 0;
    atom_end(t);
    t->pos += i + 1;
    return 0;
}

/* -- Groups and repetition -------------------------------------------------- */

static int
add_name(struct tr *t, const char *name, size_t n, int group)
{
    if (t->nnames == t->capnames) {
        int cap = t->capnames ? t->capnames * 2 : 4;
        struct rx_name *p = realloc(t->names, (size_t)cap * sizeof *p);
        if (!p)
            return too_large(t);
        t->names = p;
        t->capnames = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return too_large(t);
    memcpy(copy, name, n);
    copy[n] = '\0';
    t->names[t->nnames].name = copy;
    t->names[t->nnames].group = group;
    t->nnames++;
    return 0;
}

static int
open_group(struct tr *t, const char *text, size_t n, int capture)
{
    if (t->depth >= MAX_DEPTH)
        return fail(t, "expression nests too deeply", t->p, t->len);
    need_next(t);
    t->open_at[t->depth++] = t->out.len;
    t->need_acc[t->depth] = 0;
    if (emitn(t, text, n) < 0)
        return -1;
    if (capture)
        t->ncap++;
    t->have_atom = 0;
    return 0;
}

static int
close_group(struct tr *t)
{
    if (t->depth == 0)
        return fail(t, "unexpected )", t->p, t->len);
    need_next(t);
    t->need_cur = t->need_acc[t->depth];
    t->depth--;
    if (emit(t, ")") < 0)
        return -1;
    t->have_atom = 1;
    t->atom_start = t->open_at[t->depth];
    t->atom_wrap = 0;
    atom_end(t);
    return 0;
}

/* "(?" at t->pos: a named group, a non-capturing group or a flag change
 * (Go parsePerlFlags). Everything else, look-around and (?>...) included,
 * is an error. */
static int
perl_flags(struct tr *t)
{
    const char *s = t->p + t->pos;
    size_t n = t->len - t->pos, i = 2;
    int neg = 0, saw = 0;
    int with_p = n > 4 && s[2] == 'P' && s[3] == '<';
    int with_lt = n > 3 && s[2] == '<';

    if (with_p || with_lt) {
        size_t begin = with_p ? 4 : 3, end, k;
        const char *gt = memchr(s, '>', n);
        if (!gt)
            return fail(t, "invalid named capture", s, n);
        end = (size_t)(gt - s);
        for (k = begin; k < end; k++)
            if (s[k] != '_' && !is_alnum((unsigned char)s[k]))
                break;
        if (end == begin || k < end)
            return fail(t, "invalid named capture", s, end + 1);
        if (open_group(t, "(", 1, 1) < 0 ||
            add_name(t, s + begin, end - begin, t->ncap) < 0)
            return -1;
        t->pos += end + 1;
        return 0;
    }
    while (i < n) {
        uint32_t c;
        i += rune(s + i, n - i, &c);
        switch (c) {
        case 'i': case 'm': case 's': case 'U':
            saw = 1;
            continue;
        case '-':
            if (neg)
                goto bad;
            neg = 1;
            saw = 0;
            continue;
        case ':':
        case ')':
            if (neg && !saw)
                goto bad;
            t->pos += i;
            if (c == ':')
                return open_group(t, s, i, 0);
            /* a flag change is no item: keep the atom before it, and let
             * repeat() move this text after a quantifier */
            return i > 3 ? emitn(t, s, i) : 0;
        default:
            goto bad;
        }
    }
bad:
    return fail(t, "invalid or unsupported Perl syntax", s, i);
}

/* Go parseRepeat: {n}, {n,}, {n,m} with no leading zeros; anything else
 * makes '{' a literal. Numbers over 1e8 become -1 (too big). */
static int
parse_int(const char *s, size_t n, size_t *i, int *v)
{
    size_t k = *i;
    if (k >= n || s[k] < '0' || s[k] > '9')
        return 0;
    if (n - k >= 2 && s[k] == '0' && s[k + 1] >= '0' && s[k + 1] <= '9')
        return 0;
    *v = 0;
    for (; k < n && s[k] >= '0' && s[k] <= '9'; k++) {
        if (*v >= 100000000)
            *v = -1;
        else if (*v >= 0)
            *v = *v * 10 + (s[k] - '0');
    }
    *i = k;
    return 1;
}

static int
parse_repeat(const char *s, size_t n, int *min, int *max, size_t *after)
{
    size_t i = 1;
    if (!parse_int(s, n, &i, min) || i >= n)
        return 0;
    if (s[i] != ',') {
        *max = *min;
    } else {
        i++;
        if (i >= n)
            return 0;
        if (s[i] == '}')
            *max = -1;
        else if (!parse_int(s, n, &i, max))
            return 0;
        else if (*max < 0)
            *min = -1;
    }
    if (i >= n || s[i] != '}')
        return 0;
    *after = i + 1;
    return 1;
}

/* Applies quantifier q (PCRE2 text) to the atom. t->pos is just past the
 * operator; before is where it started. A following '?' makes it lazy. */
static int
repeat(struct tr *t, size_t before, const char *q, int min, int max)
{
    size_t tail_len;
    char *tail = NULL;
    int rc = -1;

    if (t->pos < t->len && t->p[t->pos] == '?')
        t->pos++;
    if (t->last_rep != RX_UNSET)
        return fail(t, "invalid nested repetition operator",
                    t->p + t->last_rep, t->pos - t->last_rep);
    if (!t->have_atom)
        return fail(t, "missing argument to repetition operator",
                    t->p + before, t->pos - before);
    if (min != -2) {
        /* {n,m}: budget max (or min for {n,}); {0} needs nothing */
        long m = max < 0 ? min : max;
        if (max == 0)
            t->need_cur = 0;
        else if (m > 0)
            t->need_cur = t->need_cur * m > m ? t->need_cur * m : m;
        if ((min >= 2 || max >= 2) && t->need_cur > 1000)
            return fail(t, "invalid repeat count", t->p + before,
                        t->pos - before);
    }
    /* flag changes written after the atom move behind the quantifier */
    tail_len = t->out.len - t->atom_end;
    if (tail_len) {
        if (!(tail = malloc(tail_len)))
            return too_large(t);
        memcpy(tail, t->out.data + t->atom_end, tail_len);
        t->out.len = t->atom_end;
    }
    if (t->atom_wrap) {
        /* an assertion or an already repeated item: PCRE2 wants a group */
        if (emit(t, "(?:") < 0)
            goto done;
        memmove(t->out.data + t->atom_start + 3, t->out.data + t->atom_start,
                t->out.len - 3 - t->atom_start);
        memcpy(t->out.data + t->atom_start, "(?:", 3);
        if (emit(t, ")") < 0)
            goto done;
    }
    if (emit(t, q) < 0)
        goto done;
    if (t->p[t->pos - 1] == '?' && t->pos - 1 > before &&
        emit(t, "?") < 0)
        goto done;
    atom_end(t);
    t->atom_wrap = 1;
    if (tail_len && emitn(t, tail, tail_len) < 0)
        goto done;
    rc = 0;
done:
    free(tail);
    return rc;
}

/* -- The parse loop (Go regexp/syntax parse, Perl flags) -------------------- */

static int
literal(struct tr *t, uint32_t cp)
{
    atom_begin(t, 0);
    if (emit_cp(t, cp) < 0)
        return -1;
    atom_end(t);
    return 0;
}

static int
assertion(struct tr *t, const char *text, size_t consumed)
{
    atom_begin(t, 1);
    if (emit(t, text) < 0)
        return -1;
    atom_end(t);
    t->pos += consumed;
    return 0;
}

static int
backslash(struct tr *t)
{
    const char *s = t->p + t->pos, *pc;
    size_t n = t->len - t->pos, used;
    uint32_t cp;
    int r;

    if (n >= 2) {
        switch (s[1]) {
        case 'A': return assertion(t, "\\A", 2);
        case 'b': return assertion(t, "\\b", 2);
        case 'B': return assertion(t, "\\B", 2);
        case 'z': return assertion(t, "\\z", 2);
        case 'C': return fail(t, "invalid escape sequence", s, 2);
        case 'Q': {
            /* \Q...\E: literals, each its own item as in Go */
            size_t k = 2, end = n, next = n;
            for (size_t m = 2; m + 1 < n; m++)
                if (s[m] == '\\' && s[m + 1] == 'E') {
                    end = m;
                    next = m + 2;
                    break;
                }
            while (k < end) {
                k += rune(s + k, end - k, &cp);
                if (literal(t, cp) < 0)
                    return -1;
            }
            t->pos += next;
            return 0;
        }
        default:
            break;
        }
    }
    atom_begin(t, 0);
    if ((r = unicode_class(t, s, n, 1, &used)) < 0)
        return -1;
    if (r > 0) {
        atom_end(t);
        t->pos += used;
        return 0;
    }
    if (n >= 2 && (pc = perl_class(s[1], 1)) != NULL) {
        if (emit(t, pc) < 0)
            return -1;
        atom_end(t);
        t->pos += 2;
        return 0;
    }
    if (parse_escape(t, s, n, &cp, &used) < 0)
        return -1;
    t->pos += used;
    return literal(t, cp);
}

static int
translate(struct tr *t)
{
    while (t->pos < t->len) {
        size_t rep = RX_UNSET, before = t->pos, after;
        unsigned char c = (unsigned char)t->p[t->pos];
        char q[48];
        int min, max;
        uint32_t cp;

        switch (c) {
        case '(':
            if (t->pos + 1 < t->len && t->p[t->pos + 1] == '?') {
                if (perl_flags(t) < 0)
                    return -1;
                break;
            }
            if (open_group(t, "(", 1, 1) < 0)
                return -1;
            t->pos++;
            break;
        case '|':
            if (emit(t, "|") < 0)
                return -1;
            need_next(t);
            t->have_atom = 0;
            t->pos++;
            break;
        case ')':
            if (close_group(t) < 0)
                return -1;
            t->pos++;
            break;
        case '^':
            if (assertion(t, "^", 1) < 0)
                return -1;
            break;
        case '$':
            if (assertion(t, "$", 1) < 0)
                return -1;
            break;
        case '.':
            atom_begin(t, 0);
            if (emit(t, ".") < 0)
                return -1;
            atom_end(t);
            t->pos++;
            break;
        case '[':
            if (parse_class(t) < 0)
                return -1;
            break;
        case '*':
        case '+':
        case '?':
            q[0] = (char)c;
            q[1] = '\0';
            t->pos++;
            if (repeat(t, before, q, -2, -2) < 0)
                return -1;
            rep = before;
            break;
        case '{':
            if (!parse_repeat(t->p + t->pos, t->len - t->pos, &min, &max,
                              &after)) {
                if (literal(t, '{') < 0)
                    return -1;
                t->pos++;
                break;
            }
            if (min < 0 || min > 1000 || max > 1000 || (max >= 0 && min > max))
                return fail(t, "invalid repeat count", t->p + t->pos, after);
            if (max == min)
                snprintf(q, sizeof q, "{%d}", min);
            else if (max < 0)
                snprintf(q, sizeof q, "{%d,}", min);
            else
                snprintf(q, sizeof q, "{%d,%d}", min, max);
            t->pos += after;
            if (repeat(t, before, q, min, max) < 0)
                return -1;
            rep = before;
            break;
        case '\\':
            if (backslash(t) < 0)
                return -1;
            break;
        default:
            t->pos += rune(t->p + t->pos, t->len - t->pos, &cp);
            if (literal(t, cp) < 0)
                return -1;
            break;
        }
        t->last_rep = rep;
    }
    if (t->depth > 0)
        return fail(t, "missing closing )", t->p, t->len);
    return 0;
}

/* -- Public API -------------------------------------------------------------- */

void
rx_free(struct rx *rx)
{
    if (!rx)
        return;
    pcre2_code_free(rx->code);
    for (int i = 0; i < rx->nnames; i++)
        free(rx->names[i].name);
    free(rx->names);
    free(rx->pattern);
    free(rx->translated);
    free(rx);
}

struct rx *
rx_compilen(const char *pat, size_t len, char *err, size_t errlen)
{
    struct tr *t = NULL;
    struct rx *rx = NULL;
    pcre2_compile_context *cc = NULL;
    int ec;
    PCRE2_SIZE eoff;
    uint32_t cp;

    t = calloc(1, sizeof *t);
    rx = calloc(1, sizeof *rx);
    if (!t || !rx) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->p = pat;
    t->len = len;
    t->last_rep = RX_UNSET;
    t->err = err;
    t->errlen = errlen;
    buf_init(&t->out, MAX_OUT);
    for (size_t i = 0; i < len;) {
        size_t w = goquote_utf8_decode((const unsigned char *)pat + i,
                                       len - i, &cp);
        if (w == 1 && cp == 0xFFFD) {
            fail(t, "invalid UTF-8", pat + i, len - i);
            goto fail;
        }
        i += w;
    }
    if (translate(t) < 0)
        goto fail;
    if (!(rx->pattern = malloc(len + 1)) ||
        !(rx->translated = buf_take(&t->out, NULL))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(rx->pattern, pat, len);
    rx->pattern[len] = '\0';
    rx->ncap = t->ncap;
    rx->names = t->names;
    rx->nnames = t->nnames;
    t->names = NULL;
    t->nnames = 0;
    if (!(cc = pcre2_compile_context_create(NULL))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    pcre2_set_parens_nest_limit(cc, MAX_DEPTH + 10);
    rx->code = pcre2_compile((PCRE2_SPTR)rx->translated, PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_DOLLAR_ENDONLY |
                             PCRE2_ALT_CIRCUMFLEX | PCRE2_MATCH_INVALID_UTF |
                             PCRE2_NEVER_BACKSLASH_C, &ec, &eoff, cc);
    if (!rx->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "error parsing regexp: %s: `%.*s`",
                 (const char *)msg, (int)len, pat);
        goto fail;
    }
    /* JIT is an optimisation only: without it matching is still correct */
    (void)pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE);
    pcre2_compile_context_free(cc);
    buf_free(&t->out);
    free(t);
    return rx;
fail:
    pcre2_compile_context_free(cc);
    if (t) {
        for (int i = 0; i < t->nnames; i++)
            free(t->names[i].name);
        free(t->names);
        buf_free(&t->out);
        free(t);
    }
    rx_free(rx);
    return NULL;
}

struct rx *
rx_compile(const char *pat, char *err, size_t errlen)
{
    return rx_compilen(pat, strlen(pat), err, errlen);
}

int
rx_search(const struct rx *rx, const char *s, size_t len, size_t *ovec,
          size_t novec, char *err, size_t errlen)
{
    pcre2_match_data *md;
    int rc, r = -1;

    /* per call: match data must never be shared between threads */
    md = pcre2_match_data_create_from_pattern(rx->code, NULL);
    if (!md) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, 0, PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) {
        r = 0;
        goto done;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        snprintf(err, errlen, "regexp match failed: %s", (const char *)msg);
        goto done;
    }
    {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t have = pcre2_get_ovector_count(md);
        for (size_t k = 0; k + 1 < novec; k += 2) {
            size_t g = k / 2;
            if (g < have && ov[2 * g] != PCRE2_UNSET) {
                ovec[k] = ov[2 * g];
                ovec[k + 1] = ov[2 * g + 1];
            } else {
                ovec[k] = ovec[k + 1] = RX_UNSET;
            }
        }
    }
    r = 1;
done:
    pcre2_match_data_free(md);
    return r;
}

int
rx_ncaptures(const struct rx *rx)
{
    return rx->ncap;
}

int
rx_name_count(const struct rx *rx)
{
    return rx->nnames;
}

const char *
rx_name_at(const struct rx *rx, int i, int *group)
{
    if (i < 0 || i >= rx->nnames)
        return NULL;
    if (group)
        *group = rx->names[i].group;
    return rx->names[i].name;
}

int
rx_name_index(const struct rx *rx, const char *name)
{
    for (int i = 0; i < rx->nnames; i++)
        if (strcmp(rx->names[i].name, name) == 0)
            return rx->names[i].group;
    return -1;
}

const char *
rx_pattern(const struct rx *rx)
{
    return rx->pattern;
}

const char *
rx_translated(const struct rx *rx)
{
    return rx->translated;
}
