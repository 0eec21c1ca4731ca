-- spec/core/regex_spec.lua: adapter.core regexes (src/rx.c, src/lx_core.c).
-- Go RE2 dialect: what Go's regexp.Compile rejects must be rejected with
-- Go's message; what it accepts must match as Go matches.
local core = require "adapter.core"

local function compile_error(pat)
    local rx, err = core.regex(pat)
    assert.is_nil(rx, "expected an error for " .. pat)
    return err
end

local function whole(pat, s)
    local rx = assert(core.regex(pat))
    local m = rx:match(s)
    return m and m[0]
end

describe("core.regex rejects what RE2 lacks", function()
    local cases = {
        { "(?=a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`" },
        { "a(?!b)", "error parsing regexp: invalid or unsupported Perl syntax: `(?!`" },
        { "(?<=a)b", "error parsing regexp: invalid named capture: `(?<=a)b`" },
        { "(?<!a)b", "error parsing regexp: invalid named capture: `(?<!a)b`" },
        { "(?>ab)", "error parsing regexp: invalid or unsupported Perl syntax: `(?>`" },
        { "(a)\\1", "error parsing regexp: invalid escape sequence: `\\1`" },
        { "(?P<n>a)\\k<n>", "error parsing regexp: invalid escape sequence: `\\k`" },
        { "a*+", "error parsing regexp: invalid nested repetition operator: `*+`" },
        { "a++", "error parsing regexp: invalid nested repetition operator: `++`" },
        { "a?+", "error parsing regexp: invalid nested repetition operator: `?+`" },
        { "a{2}+", "error parsing regexp: invalid nested repetition operator: `{2}+`" },
        { "a**", "error parsing regexp: invalid nested repetition operator: `**`" },
        { "(?R)", "error parsing regexp: invalid or unsupported Perl syntax: `(?R`" },
        { "(a)(?1)", "error parsing regexp: invalid or unsupported Perl syntax: `(?1`" },
        { "(?(1)a|b)", "error parsing regexp: invalid or unsupported Perl syntax: `(?(`" },
        { "\\C", "error parsing regexp: invalid escape sequence: `\\C`" },
        { "(?C1)a", "error parsing regexp: invalid or unsupported Perl syntax: `(?C`" },
        { "(?x)a b", "error parsing regexp: invalid or unsupported Perl syntax: `(?x`" },
        { "(?#c)a", "error parsing regexp: invalid or unsupported Perl syntax: `(?#`" },
        { "a\\Z", "error parsing regexp: invalid escape sequence: `\\Z`" },
        { "\\h", "error parsing regexp: invalid escape sequence: `\\h`" },
        { "\\R", "error parsing regexp: invalid escape sequence: `\\R`" },
        { "(*UTF)a", "error parsing regexp: missing argument to repetition operator: `*`" },
        { "*a", "error parsing regexp: missing argument to repetition operator: `*`" },
        { "a|*", "error parsing regexp: missing argument to repetition operator: `*`" },
        { "(?i)*", "error parsing regexp: missing argument to repetition operator: `*`" },
        { "a{1001}", "error parsing regexp: invalid repeat count: `{1001}`" },
        { "a{3,2}", "error parsing regexp: invalid repeat count: `{3,2}`" },
        { "(a{100}){11}", "error parsing regexp: invalid repeat count: `{11}`" },
        { "((a{10}){10}|b){11,}?", "error parsing regexp: invalid repeat count: `{11,}?`" },
        { "(a", "error parsing regexp: missing closing ): `(a`" },
        { "a)", "error parsing regexp: unexpected ): `a)`" },
        { "[a", "error parsing regexp: missing closing ]: `[a`" },
        { "[z-a]", "error parsing regexp: invalid character class range: `z-a`" },
        { "[[:foo:]]", "error parsing regexp: invalid character class range: `[:foo:]`" },
        { "\\p{Foo}", "error parsing regexp: invalid character class range: `\\p{Foo}`" },
        { "\\p{greek}", "error parsing regexp: invalid character class range: `\\p{greek}`" },
        { "(?P<a-b>x)", "error parsing regexp: invalid named capture: `(?P<a-b>`" },
        { "(?P<>x)", "error parsing regexp: invalid named capture: `(?P<>`" },
        { "(?P=n)", "error parsing regexp: invalid or unsupported Perl syntax: `(?P`" },
        { "a\\", "error parsing regexp: trailing backslash at end of expression: ``" },
        { "\\8", "error parsing regexp: invalid escape sequence: `\\8`" },
        { "\\x{110000}", "error parsing regexp: invalid escape sequence: `\\x{110000`" },
        { "\\xZ1", "error parsing regexp: invalid escape sequence: `\\xZ1`" },
        { "(?i-)a", "error parsing regexp: invalid or unsupported Perl syntax: `(?i-)`" },
        { "a\255", "error parsing regexp: invalid UTF-8: `\255`" },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.are.equal(c[2], compile_error(c[1]))
        end)
    end
end)

describe("core.regex accepts Go syntax", function()
    it("named groups in both spellings, numbered with the others", function()
        local rx = assert(core.regex("(?P<first>a)(b)(?<third>c)(?:d)"))
        assert.are.equal(3, rx:ncaptures())
        assert.are.same({ first = 1, third = 3 }, rx:names())
    end)

    it("Go names PCRE2 would refuse (leading digit), and repeated names", function()
        local rx = assert(core.regex("(?P<1a>x)(?P<n>y)(?P<n>z)"))
        assert.are.same({ ["1a"] = 1, n = 2 }, rx:names())
        assert.are.same({ [0] = "xyz", "x", "y", "z" }, rx:match("xyz"))
    end)

    it("non-participating groups are false, not missing", function()
        local m = assert(core.regex("(a)|(b)")):match("b")
        assert.are.same({ [0] = "b", false, "b" }, m)
        m = assert(core.regex("x(y)?")):match("x")
        assert.are.equal(false, m[1])
    end)

    it("empty group captures the empty string", function()
        assert.are.same({ [0] = "a", "" }, assert(core.regex("a()")):match("a"))
    end)

    it("is an unanchored leftmost-first search", function()
        local rx = assert(core.regex("_total$"))
        assert.is_true(rx:test("http_requests_total"))
        assert.is_false(rx:test("http_requests_total_x"))
        assert.are.equal("a", whole("a|ab", "ab"))
        assert.are.equal("aa", whole("a+", "baab"))
        assert.is_nil(assert(core.regex("^x")):match("yx"))
    end)

    it("$ is end of text without (?m), even before a final newline", function()
        assert.is_false(assert(core.regex("a$")):test("a\n"))
        assert.is_true(assert(core.regex("(?m)a$")):test("a\n"))
        -- (?m)^ matches after a trailing newline too (Go, not Perl)
        assert.is_true(assert(core.regex("(?m)\\n^$")):test("a\n"))
    end)

    it("\\d \\s \\w \\b are ASCII, as in Go", function()
        assert.is_false(assert(core.regex("^\\d$")):test("٣"))      -- Arabic-indic 3
        assert.is_true(assert(core.regex("^\\d$")):test("7"))
        assert.is_false(assert(core.regex("^\\w$")):test("é"))
        assert.is_false(assert(core.regex("^\\s$")):test("\v"))     -- Go \s has no \v
        assert.is_true(assert(core.regex("^\\s$")):test("\f"))
        assert.is_true(assert(core.regex("^[\\S]$")):test("\v"))
        assert.is_false(assert(core.regex("^[\\D]$")):test("5"))
        assert.is_true(assert(core.regex("^[^\\W]$")):test("_"))
        assert.is_true(assert(core.regex("^[[:space:]]$")):test("\v"))
        assert.is_false(assert(core.regex("\\bé")):test(" é"))
    end)

    it("Unicode classes and case folding", function()
        assert.is_true(assert(core.regex("^\\p{Greek}+$")):test("αβγ"))
        assert.is_true(assert(core.regex("^\\pL$")):test("ж"))
        assert.is_true(assert(core.regex("^\\p{^L}$")):test("1"))
        assert.is_true(assert(core.regex("^\\PL$")):test("1"))
        assert.is_true(assert(core.regex("^[\\p{Lu}\\d]+$")):test("ÀB3"))
        assert.is_true(assert(core.regex("^(?i)é$")):test("É"))
        assert.is_true(assert(core.regex("^(?i)k$")):test("\226\132\170")) -- KELVIN SIGN
        assert.is_true(assert(core.regex("^.$")):test("☺"))
        assert.is_false(assert(core.regex("^\\p{C}$")):test("\205\184")) -- U+0378 unassigned
        assert.is_true(assert(core.regex("^\\p{C}$")):test("\226\128\139")) -- U+200B Cf
        assert.is_true(assert(core.regex("^\\p{Any}$")):test("x"))
    end)

    it("flags: (?i) (?s) (?U), scoped groups", function()
        assert.is_true(assert(core.regex("(?i)abc")):test("xABC"))
        assert.is_false(assert(core.regex("a.b")):test("a\nb"))
        assert.is_true(assert(core.regex("(?s)a.b")):test("a\nb"))
        assert.are.equal("a", whole("(?U)a+", "aaa"))
        assert.are.equal("aaa", whole("(?U)a+?", "aaa"))
        assert.is_false(assert(core.regex("(?i:a)b")):test("AB"))
        assert.is_true(assert(core.regex("(?i:a)b")):test("Ab"))
        assert.is_true(assert(core.regex("(?i-s:a.)")):test("A-"))
        assert.is_true(assert(core.regex("(?)a")):test("a"))
    end)

    it("repeats, lazy repeats, and '{' that is not a repeat", function()
        assert.are.equal("aa", whole("a{2}", "aaa"))
        assert.are.equal("aaa", whole("a{2,}", "aaa"))
        assert.are.equal("a", whole("a{1,3}?", "aaa"))
        assert.are.equal("a{01}", whole("a{01}", "a{01}"))   -- leading zero: literal
        assert.are.equal("a{,3}", whole("a{,3}", "a{,3}"))   -- Go: literal
        assert.are.equal("x{", whole("x{", "x{"))
        assert.are.equal("ab}", whole("ab}", "ab}"))
        -- a quantifier on a repeated item reached through \Q\E, and on ^
        assert.are.equal("aaa", whole("a*\\Q\\E*", "aaa"))
        assert.is_true(assert(core.regex("^*a")):test("a"))
        assert.are.equal("aa", whole("a(?i)*", "aaA"))
    end)

    it("allows nested repeats up to Go's budget of 1000", function()
        assert.is_not_nil(core.regex("((a{10}){10}){10}"))
        assert.is_not_nil(core.regex("(a{1000})*"))
        assert.is_not_nil(core.regex("(a*){1000}"))
        assert.is_not_nil(core.regex("(a{0}){1000}"))
        assert.is_not_nil(core.regex("(a{500})(b{2}){500}"))
    end)

    it("escapes: octal, hex, \\Q..\\E, punctuation, C escapes", function()
        assert.are.equal("\n", whole("\\12", "\n"))
        assert.are.equal("\0", whole("\\0", "\0"))
        assert.are.equal("S", whole("\\123", "S"))
        assert.are.equal("A", whole("\\x41", "A"))
        assert.are.equal("☺", whole("\\x{263a}", "☺"))
        assert.are.equal("a.b*", whole("\\Qa.b*\\E", "xa.b*"))
        assert.are.equal("a.b", whole("\\Qa.b", "a.b"))
        assert.are.equal(".+_", whole("\\.\\+\\_", ".+_"))
        assert.are.equal("\t\a", whole("\\t\\a", "\t\a"))
        assert.is_true(assert(core.regex("\\Aab\\z")):test("ab"))
        assert.is_false(assert(core.regex("\\Aab\\z")):test("ab\n"))
    end)

    it("character classes as Go reads them", function()
        assert.are.equal("]", whole("[]a]", "]"))
        assert.are.equal("-", whole("[a-]", "-"))
        assert.are.equal("[", whole("[[]", "["))
        assert.are.equal("x", whole("[^]a]", "x"))
        assert.are.equal("\n", whole("[^a]", "\n"))
        assert.are.equal("b", whole("[[:alpha:]]", "1b"))
        assert.are.equal("1", whole("[[:^alpha:]]", "b1"))
        assert.are.equal(".]", whole("[[.a.]]", ".]"))  -- class [[.a.] then ]
        assert.are.equal("é", whole("[à-ê]", "é"))
    end)

    it("matches subjects that are not valid UTF-8", function()
        local m = assert(core.regex("b(.)")):match("a\255b\255")
        assert.is_nil(m)   -- '.' never matches an invalid byte in PCRE2
        assert.is_true(assert(core.regex("b")):test("\255b"))
    end)

    it("matches NUL bytes in pattern and subject", function()
        assert.is_true(assert(core.regex("a\0b")):test("xa\0b"))
    end)

    it("exposes the pattern and frees on collection", function()
        local rx = assert(core.regex("ab+"))
        assert.are.equal("ab+", rx:pattern())
        assert.matches("regex%(ab%+%)", tostring(rx))
        rx = nil
        collectgarbage()
        collectgarbage()
    end)

    it("errors on a wrong argument", function()
        assert.has_error(function() core.regex() end)
        local rx = assert(core.regex("a"))
        assert.has_error(function() rx.test({}, "a") end)
    end)
end)
