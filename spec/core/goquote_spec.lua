-- spec/core/goquote_spec.lua: core.goquote is Go's strconv.Quote (%q).
local core = require "adapter.core"
local q = core.goquote

describe("core.goquote", function()
    it("quotes plain text as is", function()
        assert.are.equal('"web-1.example"', q("web-1.example"))
        assert.are.equal('""', q(""))
        assert.are.equal('" ~"', q(" ~"))
    end)

    it("backslashes quote and backslash", function()
        assert.are.equal([["a\"b\\c"]], q('a"b\\c'))
        assert.are.equal([["'"]], q("'"))
    end)

    it("uses the C escapes", function()
        assert.are.equal([["\a\b\f\n\r\t\v"]], q("\a\b\f\n\r\t\v"))
    end)

    it("writes other control bytes and DEL as lower-case \\xHH", function()
        assert.are.equal([["\x00\x01\x1b\x1f\x7f"]], q("\0\1\27\31\127"))
    end)

    it("writes each byte of invalid UTF-8 as \\xHH", function()
        assert.are.equal([["\xff"]], q("\255"))
        assert.are.equal([["a\xc3"]], q("a\195"))                -- truncated
        assert.are.equal([["\xc0\xaf"]], q("\192\175"))           -- overlong '/'
        assert.are.equal([["\xed\xa0\x80"]], q("\237\160\128"))   -- surrogate
        assert.are.equal([["\xf4\x90\x80\x80"]], q("\244\144\128\128")) -- > U+10FFFF
        assert.are.equal([["\xe2\x98"]], q("\226\152"))
    end)

    it("copies printable Unicode (letters, marks, numbers, punct, symbols)", function()
        assert.are.equal('"é☺日本€😀"', q("é☺日本€😀"))
        assert.are.equal('"a\204\129"', q("a\204\129"))         -- combining acute (Mn)
        assert.are.equal('"\239\191\189"', q("\239\191\189"))   -- U+FFFD itself
    end)

    it("escapes non-printable code points as \\u or \\U", function()
        assert.are.equal([["\u00a0"]], q("\194\160"))            -- NO-BREAK SPACE
        assert.are.equal([["\u0085"]], q("\194\133"))            -- NEL (Cc)
        assert.are.equal([["\u00ad"]], q("\194\173"))            -- SOFT HYPHEN (Cf)
        assert.are.equal([["\u200b"]], q("\226\128\139"))        -- ZERO WIDTH SPACE
        assert.are.equal([["\u2028"]], q("\226\128\168"))        -- LINE SEPARATOR
        assert.are.equal([["\u3000"]], q("\227\128\128"))        -- IDEOGRAPHIC SPACE
        assert.are.equal([["\ufeff"]], q("\239\187\191"))        -- BOM
        assert.are.equal([["\ue000"]], q("\238\128\128"))        -- private use
        assert.are.equal([["\u0378"]], q("\205\184"))            -- unassigned
        assert.are.equal([["\U000e0001"]], q("\243\160\128\129")) -- LANGUAGE TAG
        assert.are.equal([["\U0010ffff"]], q("\244\143\191\191"))
    end)

    it("follows Unicode 15.0 (Go 1.22): Kawi is printable", function()
        assert.are.equal('"\240\145\188\132"', q("\240\145\188\132")) -- U+11F04
    end)

    it("handles NUL inside and long strings", function()
        assert.are.equal([["a\x00b"]], q("a\0b"))
        local s = string.rep("x", 100000)
        assert.are.equal('"' .. s .. '"', q(s))
    end)

    it("rejects a non-string", function()
        assert.has_error(function() q({}) end)
    end)
end)
