-- Go text/template subset (spec-rules.md §2.1): constructs, printing, errors.
local T = require "adapter.template"

local function data()
    return T.struct("naming.queryTemplateArgs",
        { "Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice" },
        { Series = "foo", LabelMatchers = 'a="b"',
          LabelValuesByName = T.map({ resource = "bar|baz", namespaces = "default" }),
          GroupBy = "pod", GroupBySlice = T.list({ "pod", "container" }) })
end

local function run(text)
    local t, err = T.compile(text, "metrics-query")
    if not t then return nil, err end
    return t:execute(data())
end

describe("template", function()
    local cases = {
        { "series <<.Series>>", "series foo" },
        { "<<.GroupBySlice>>", "[pod container]" },
        { "<<.LabelValuesByName>>", "map[namespaces:default resource:bar|baz]" },
        { "<<.LabelValuesByName.missing>>", "<no value>" },
        { '<<index .LabelValuesByName "missing">>|', "|" },
        { '<<index .LabelValuesByName "namespaces">> <<index .LabelValuesByName "resource">>', "default bar|baz" },
        { "<<range $i, $v := .GroupBySlice>><<$i>>=<<$v>>,<<end>>", "0=pod,1=container," },
        { '<<range .GroupBySlice>><<if eq . "pod">><<continue>><<end>>[<<.>>]<<end>>', "[container]" },
        { "<<range .GroupBySlice>><<.>><<break>><<end>>", "pod" },
        { "<<range .LabelMatchers>>x<<end>>", nil },
        { "a  <<- .Series ->>  b", "afoob" },
        { "a <</* comment */>>b", "a b" },
        { "<<if .Series>>y<<else if .GroupBy>>n<<else>>z<<end>>", "y" },
        { '<<if eq .Series "x">>y<<else if eq .GroupBy "pod">>n<<else>>z<<end>>', "n" },
        { "<<with .GroupBy>>[<<.>>]<<else>>none<<end>>", "[pod]" },
        { '<<.Series | printf "%s!">>', "foo!" },
        { '<<printf "%s-%d-%v" .Series 3 .GroupBySlice>>', "foo-3-[pod container]" },
        { "<<$x := .Series>><<$x>><<$.GroupBy>>", "foopod" },
        { "<<len .GroupBySlice>> <<len .Series>>", "2 3" },
        { "<<slice .Series 1>> <<slice .Series 0 1>>", "oo f" },
        { "<<and 1 0>> <<or 0 \"\" 3>> <<not true>>", "0 3 false" },
        { "<<lt 1 2>> <<gt \"a\" \"b\">> <<ne 1 2>> <<le 2 2>> <<ge 1 2>>", "true false true true false" },
        { '<<urlquery "a b&c">> <<html "<a>">> <<js "\'x\'">>', "a+b%26c &lt;a&gt; \\'x\\'" },
        { '<<print 1 2 "a" 3>>', "1 2a3" },
        { '<<println "a" 1>>', "a 1\n" },
        { "<<(.LabelValuesByName).resource>>", "bar|baz" },
        { "text\nonly", "text\nonly" },
    }
    for _, c in ipairs(cases) do
        it("renders " .. c[1]:gsub("\n", "\\n"), function()
            local out, err = run(c[1])
            if c[2] == nil then
                assert.is_nil(out)
            else
                assert.are.equal(c[2], out, err)
            end
        end)
    end

    it("reports a missing field as an execution error with position", function()
        local out, err = run("x <<.Foo>>")
        assert.is_nil(out)
        assert.are.equal('template: metrics-query:1:4: executing "metrics-query" at <.Foo>: '
            .. "can't evaluate field Foo in type naming.queryTemplateArgs", err)
    end)

    it("reports index out of range at execution", function()
        local _, err = run("<<index .GroupBySlice 5>>")
        assert.matches("error calling index: index out of range: 5", err, 1, true)
    end)

    it("refuses unknown functions and unsupported actions at compile time", function()
        local t, err = T.compile("<<join .GroupBySlice \",\">>", "q")
        assert.is_nil(t)
        assert.are.equal('template: q:1: function "join" not defined', err)
        t, err = T.compile('a\n<<define "x">>y<<end>>', "q")
        assert.is_nil(t)
        assert.matches("template: q:2: \"define\" actions are not supported", err, 1, true)
        t = T.compile("<<template \"x\">>", "q")
        assert.is_nil(t)
        t = T.compile("<<call .X>>", "q")
        assert.is_nil(t)
    end)

    it("reports parse errors with the line", function()
        local t, err = T.compile("ok\n<<.Series", "q")
        assert.is_nil(t)
        assert.are.equal("template: q:2: unclosed action", err)
        t, err = T.compile("<<break>>", "q")
        assert.is_nil(t)
        assert.matches("outside {{range}}", err, 1, true)
        t = T.compile("<<if .X>>", "q")
        assert.is_nil(t)
        t, err = T.compile("<<$y>>", "q")
        assert.are.equal('template: q:1: undefined variable "$y"', err)
    end)

    it("quotes with %q through Go strconv.Quote", function()
        local out = run('<<printf "%q" "a\\"b">>')
        assert.are.equal('"a\\"b"', out)
    end)

    it("formats like Go fmt for bad verbs and extra args", function()
        assert.are.equal("%!d(string=x)", T.sprintf("%d", { n = 1, "x" }))
        assert.are.equal("a%!(EXTRA int=1)", T.sprintf("a", { n = 1, 1 }))
        assert.are.equal("%!s(MISSING)", T.sprintf("%s", { n = 0 }))
        assert.are.equal("  ab|ab  |007", T.sprintf("%4s|%-4s|%03d", { n = 3, "ab", "ab", 7 }))
    end)
end)
