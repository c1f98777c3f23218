#include "common/config.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/config_units.h"
#include "tests/unit/test_util.h"

using namespace mirror::common;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;
using std::chrono::milliseconds;

namespace {

constexpr const char* kFile = "/etc/mirrord/mirrord.json";

// Shaped like the daemons' own tables (issues 3 and 4), so the tests exercise every type.
Schema MirrorfsSchema() {
  Schema s;
  s.String("source_id", "Name of this source", Required()).NonEmpty().MaxLength(16);
  s.String("journal", "Path of the journal file", Default("/var/lib/mirrorfs/journal"))
      .Check(IsAbsolutePath, "absolute path");
  s.Size("journal_size", "Size of the journal file", Default("256M")).Min(1 << 20);
  s.Duration("cp_interval", "Time between consistency points", Default("5s"))
      .Min(milliseconds(100))
      .Max(std::chrono::hours(1));
  s.Bool("allow_other", "Let other users use the mount", Default(false));
  s.Bool("ro", "Mount read-only", Default(false));
  s.String("mirror", "Where mirrord listens", Required()).Check(IsHostPort, "HOST:PORT");
  s.Enum("mode", "Acknowledgement level", {"sync", "async", "durable"}, Default("sync"));
  s.Enum("on_disconnect", "What writes do while the link is down", {"block", "degrade"},
         Default("block"));
  s.Duration("max_lag", "Largest lag allowed in async mode");
  s.String("secret_file", "Shared secret");
  s.Uint("threads", "Worker threads", Default(4)).Min(1).Max(64);
  return s;
}

Schema MirrordSchema() {
  Schema limits;
  limits.Size("max_frame", "Largest wire frame", Default("4M")).Min(4096).Max(1ull << 30);
  limits.Size("max_record", "Largest record", Default("1M")).Min(4096);
  limits.Size("memory_size", "Size of each source's memory", Default("64M"));
  Schema retention;
  retention.Duration("max_age", "Keep applied log segments this long", Default("0s"));
  retention.Size("max_bytes", "Keep at most this much applied log");
  Schema source;
  source.String("id", "Source id", Required()).NonEmpty();
  source.String("secret_file", "Shared secret", Required()).Check(IsAbsolutePath, "absolute path");
  source.Bool("allow_devices", "Allow device nodes", Default(false));
  source.Object("retention", "Point-in-time restore window", retention).Shorthand("max_age");
  Schema s;
  s.StringList("listen", "Addresses to listen on").Min(1).Check(IsHostPort, "HOST:PORT");
  s.String("state_dir", "Where logs and images live", Default("/var/lib/mirrord"));
  s.Object("limits", "Size limits", limits);
  s.ObjectList("sources", "Sources allowed to connect", source);
  return s;
}

std::string Error(const Result<Config>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  return r.status().message();
}

std::string MirrordError(const std::string& json) {
  return Error(ParseJsonConfig(json, MirrordSchema(), kFile));
}

// A valid mirrorfs config file with `extra` members appended.
std::string MirrorfsJson(const std::string& extra = "") {
  return R"({"source_id": "src1", "mirror": "backup:7000")" + extra + "}";
}

std::string MirrorfsError(const std::string& extra) {
  return Error(ParseJsonConfig(MirrorfsJson(extra), MirrorfsSchema(), "fs.json"));
}

}  // namespace

TEST_CASE("DefaultsFillAbsentOptionalKeys") {
  Result<Config> r = ParseJsonConfig(MirrorfsJson(), MirrorfsSchema(), "fs.json");
  REQUIRE(r.ok());
  const Config& c = *r;
  CHECK(c.GetString("source_id") == "src1");
  CHECK(c.GetString("mirror") == "backup:7000");
  CHECK(c.GetString("journal") == "/var/lib/mirrorfs/journal");
  CHECK(c.GetSize("journal_size") == 256ull << 20);
  CHECK(c.GetDuration("cp_interval") == milliseconds(5000));
  CHECK(c.GetBool("allow_other") == false);
  CHECK(c.GetString("mode") == "sync");
  CHECK(c.GetUint("threads") == 4);
  CHECK(c.Has("mode"));
  CHECK_FALSE(c.Has("max_lag"));
  CHECK_FALSE(c.Has("secret_file"));
}

TEST_CASE("NestedDefaultsListsAndObjects") {
  Result<Config> r = ParseJsonConfig(R"({
    "listen": ["0.0.0.0:7000", "[::1]:7001"],
    "limits": {"max_frame": "64K"},
    "sources": [
      {"id": "a", "secret_file": "/etc/mirrord/a.key", "retention": "7d"},
      {"id": "b", "secret_file": "/etc/mirrord/b.key", "allow_devices": true,
       "retention": {"max_bytes": "10G"}}
    ]})",
                                     MirrordSchema(), kFile);
  REQUIRE(r.ok());
  CHECK(r->GetStringList("listen") == std::vector<std::string>{"0.0.0.0:7000", "[::1]:7001"});
  CHECK(r->GetString("state_dir") == "/var/lib/mirrord");
  const Config& limits = r->GetObject("limits");
  CHECK(limits.GetSize("max_frame") == 65536);
  CHECK(limits.GetSize("max_record") == 1u << 20);
  CHECK(limits.GetSize("memory_size") == 64u << 20);
  const std::vector<Config>& sources = r->GetObjectList("sources");
  REQUIRE(sources.size() == 2);
  CHECK(sources[0].GetString("id") == "a");
  CHECK(sources[0].GetBool("allow_devices") == false);
  CHECK(sources[0].GetObject("retention").GetDuration("max_age") == std::chrono::hours(24 * 7));
  CHECK_FALSE(sources[0].GetObject("retention").Has("max_bytes"));
  CHECK(sources[1].GetBool("allow_devices") == true);
  CHECK(sources[1].GetObject("retention").GetSize("max_bytes") == 10ull << 30);
  CHECK(sources[1].GetObject("retention").GetDuration("max_age") == milliseconds(0));
}

TEST_CASE("AbsentObjectGetsItsDefaults") {
  Result<Config> r = ParseJsonConfig(R"({"listen": ["h:1"]})", MirrordSchema(), kFile);
  REQUIRE(r.ok());
  CHECK(r->GetObject("limits").GetSize("max_frame") == 4u << 20);
  CHECK(r->GetObjectList("sources").empty());
}

TEST_CASE("SizesParseExactly") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (Case c :
       {Case{"0", 0}, Case{"4096", 4096}, Case{"64K", 65536}, Case{"64k", 65536},
        Case{"64KB", 65536}, Case{"64KiB", 65536}, Case{"64kib", 65536}, Case{"256M", 256ull << 20},
        Case{"1G", 1ull << 30}, Case{"1g", 1ull << 30}, Case{"1T", 1ull << 40}, Case{"512B", 512},
        Case{"18446744073709551615", UINT64_MAX}, Case{"16777215T", 16777215ull << 40}}) {
    CAPTURE(c.text);
    Result<uint64_t> r = ParseSize(c.text);
    REQUIRE(r.ok());
    CHECK(*r == c.bytes);
  }
  CHECK(FormatSize(65536) == "64K");
  CHECK(FormatSize(4097) == "4097");
  CHECK(FormatSize(3ull << 40) == "3T");
  CHECK(*ParseSize(FormatSize(1536ull << 20)) == 1536ull << 20);
}

TEST_CASE("DurationsParseExactly") {
  struct Case {
    const char* text;
    int64_t ms;
  };
  for (Case c : {Case{"500ms", 500}, Case{"5s", 5000}, Case{"5", 5000}, Case{"2m", 120000},
                 Case{"1h", 3600000}, Case{"7d", 7 * 86400000ll}, Case{"0", 0}, Case{"5S", 5000},
                 Case{"10MS", 10}}) {
    CAPTURE(c.text);
    Result<milliseconds> r = ParseDuration(c.text);
    REQUIRE(r.ok());
    CHECK(r->count() == c.ms);
  }
  CHECK(FormatDuration(milliseconds(500)) == "500ms");
  CHECK(FormatDuration(milliseconds(120000)) == "2m");
  CHECK(FormatDuration(milliseconds(1500)) == "1500ms");
  CHECK(FormatDuration(milliseconds(0)) == "0s");
}

TEST_CASE("BadSizeStringsAreRefusedWithReason") {
  CHECK(ParseSize("12Q").status().message() ==
        "\"12Q\" is not a size (use a number with K, M, G or T)");
  CHECK(ParseSize("1.5G").status().message().find("fractions are not allowed") !=
        std::string::npos);
  CHECK(ParseSize("99999999999T").status().message() ==
        "\"99999999999T\" is too large (more than 2^64-1 bytes)");
  CHECK(ParseSize("16777216T").status().message().find("too large") != std::string::npos);
  CHECK(ParseSize("18446744073709551616").status().message().find("too large") !=
        std::string::npos);
  for (const char* bad : {"", "K", "-1", "+1", " 1", "1 K", "1KK", "1Ki", "1ms", "0x10", "1P"}) {
    CAPTURE(bad);
    Result<uint64_t> r = ParseSize(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find("is not a size") != std::string::npos);
  }
}

TEST_CASE("BadDurationStringsAreRefusedWithReason") {
  CHECK(ParseDuration("5x").status().message() ==
        "\"5x\" is not a duration (use a number with ms, s, m, h or d)");
  CHECK(ParseDuration("1.5s").status().message().find("fractions are not allowed") !=
        std::string::npos);
  CHECK(ParseDuration("99999999999999999d").status().message() ==
        "\"99999999999999999d\" is too large");
  // 2^63 ms does not fit a signed 64-bit count.
  CHECK_FALSE(ParseDuration("9223372036854775808ms").ok());
  CHECK(ParseDuration("9223372036854775807ms").ok());
  for (const char* bad : {"", "s", "-5s", "5 s", "5sec", "1w", "5mss"}) {
    CAPTURE(bad);
    CHECK(ParseDuration(bad).status().message().find("is not a duration") != std::string::npos);
  }
}

TEST_CASE("BoolWordsAndHostPort") {
  for (const char* yes : {"true", "TRUE", "yes", "on", "1"}) CHECK(ParseBool(yes) == true);
  for (const char* no : {"false", "No", "off", "0"}) CHECK(ParseBool(no) == false);
  for (const char* bad : {"", "2", "y", "truee"}) CHECK_FALSE(ParseBool(bad).has_value());
  for (const char* good : {"backup:7000", "10.0.0.1:1", "[::1]:65535", "a-b.example_x:80"}) {
    CAPTURE(good);
    CHECK(IsHostPort(good));
  }
  for (const char* bad : {"backup", "backup:", ":7000", "backup:0", "backup:65536", "[]:80",
                          "::1:80", "ba ck:80", "[::1]:x"}) {
    CAPTURE(bad);
    CHECK_FALSE(IsHostPort(bad));
  }
}

TEST_CASE("UnknownKeyIsNamedWithSuggestion") {
  CHECK(MirrordError(R"({"listn": ["h:1"]})") ==
        "/etc/mirrord/mirrord.json: unknown key 'listn' (did you mean 'listen'?)");
  CHECK(MirrordError(R"({"listen": ["h:1"], "limits": {"max_fram": 1}})") ==
        "/etc/mirrord/mirrord.json: unknown key 'limits.max_fram' (did you mean "
        "'limits.max_frame'?)");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [
      {"id": "a", "secret_file": "/a"},
      {"id": "b", "secret_file": "/b", "alow_devices": true}]})") ==
        "/etc/mirrord/mirrord.json: unknown key 'sources[1].alow_devices' (did you mean "
        "'sources[1].allow_devices'?)");
  // A swap of neighbours counts as one edit.
  CHECK(MirrorfsError(R"(, "mdoe": "sync")") ==
        "fs.json: unknown key 'mdoe' (did you mean 'mode'?)");
  // Nothing within distance 2: no suggestion.
  CHECK(MirrordError(R"({"listen": ["h:1"], "compression": true})") ==
        "/etc/mirrord/mirrord.json: unknown key 'compression'");
}

TEST_CASE("WrongTypeIsNamedForEachType") {
  struct Case {
    const char* extra;
    const char* message;
  };
  for (Case c : {
           Case{R"(, "journal": 5)", "fs.json: key 'journal': expected a string, got 5"},
           Case{R"(, "ro": "yes")", "fs.json: key 'ro': expected a boolean, got a string"},
           Case{R"(, "ro": 1)", "fs.json: key 'ro': expected a boolean, got 1"},
           Case{R"(, "threads": "4")",
                "fs.json: key 'threads': expected a non-negative integer, got a string"},
           Case{R"(, "threads": -4)",
                "fs.json: key 'threads': expected a non-negative integer, got -4"},
           Case{R"(, "threads": 4.5)",
                "fs.json: key 'threads': expected a non-negative integer, got 4.5"},
           Case{R"(, "journal_size": true)",
                "fs.json: key 'journal_size': expected a size (an integer or a string like "
                "\"64M\"), got a boolean"},
           Case{R"(, "journal_size": 1.5e9)",
                "fs.json: key 'journal_size': expected a size (an integer or a string like "
                "\"64M\"), got 1500000000.0"},
           Case{R"(, "cp_interval": [5])",
                "fs.json: key 'cp_interval': expected a duration (seconds or a string like "
                "\"500ms\"), got an array"},
           Case{R"(, "mode": 1)",
                "fs.json: key 'mode': expected one of sync, async, durable, got 1"},
           Case{R"(, "max_lag": null)",
                "fs.json: key 'max_lag': expected a duration (seconds or a string like "
                "\"500ms\"), got null"},
       }) {
    CAPTURE(c.extra);
    CHECK(MirrorfsError(c.extra) == c.message);
  }
  CHECK(MirrordError(R"({"listen": "h:1"})") ==
        "/etc/mirrord/mirrord.json: key 'listen': expected an array of strings, got a string");
  CHECK(MirrordError(R"({"listen": ["h:1", 7000]})") ==
        "/etc/mirrord/mirrord.json: key 'listen[1]': expected a string, got 7000");
  CHECK(MirrordError(R"({"listen": ["h:1"], "limits": "big"})") ==
        "/etc/mirrord/mirrord.json: key 'limits': expected an object, got a string");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": {"id": "a"}})") ==
        "/etc/mirrord/mirrord.json: key 'sources': expected an array of objects, got an object");
  CHECK(
      MirrordError(R"({"listen": ["h:1"], "sources": [{"id": "a", "secret_file": "/a"}, "b"]})") ==
      "/etc/mirrord/mirrord.json: key 'sources[1]': expected an object, got a string");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [
      {"id": "a", "secret_file": "/a"},
      {"id": "b", "secret_file": "/b", "allow_devices": "yes"}]})") ==
        "/etc/mirrord/mirrord.json: key 'sources[1].allow_devices': expected a boolean, got a "
        "string");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [
      {"id": "a", "secret_file": "/a", "retention": [1]}]})") ==
        "/etc/mirrord/mirrord.json: key 'sources[0].retention': expected an object or a "
        "duration (seconds or a string like \"500ms\"), got an array");
}

TEST_CASE("OutOfRangeNamesTheLimit") {
  CHECK(MirrordError(R"({"listen": ["h:1"], "limits": {"max_frame": 0}})") ==
        "/etc/mirrord/mirrord.json: key 'limits.max_frame': 0 is below the minimum 4096 (4K)");
  CHECK(MirrordError(R"({"listen": ["h:1"], "limits": {"max_frame": "2G"}})") ==
        "/etc/mirrord/mirrord.json: key 'limits.max_frame': \"2G\" is above the maximum "
        "1073741824 (1G)");
  // The limits are inclusive.
  CHECK(ParseJsonConfig(R"({"listen": ["h:1"], "limits": {"max_frame": "1G"}})", MirrordSchema(),
                        kFile)
            .ok());
  CHECK(ParseJsonConfig(R"({"listen": ["h:1"], "limits": {"max_frame": 4096}})", MirrordSchema(),
                        kFile)
            .ok());
  CHECK(MirrorfsError(R"(, "threads": 65)") ==
        "fs.json: key 'threads': 65 is above the maximum 64");
  CHECK(MirrorfsError(R"(, "threads": 0)") == "fs.json: key 'threads': 0 is below the minimum 1");
  CHECK(MirrorfsError(R"(, "cp_interval": "50ms")") ==
        "fs.json: key 'cp_interval': \"50ms\" is below the minimum 100ms");
  CHECK(MirrorfsError(R"(, "cp_interval": 3601)") ==
        "fs.json: key 'cp_interval': 3601 is above the maximum 1h");
  CHECK(MirrorfsError(R"(, "cp_interval": 18446744073709551615)") ==
        "fs.json: key 'cp_interval': 18446744073709551615 seconds is too large");
  CHECK(MirrorfsError(R"(, "journal_size": "99999999999T")") ==
        "fs.json: key 'journal_size': \"99999999999T\" is too large (more than 2^64-1 bytes)");
  CHECK(MirrorfsError(R"(, "journal_size": "1.5G")")
            .find("key 'journal_size': \"1.5G\" is not a "
                  "size (fractions") != std::string::npos);
  CHECK(MirrordError(R"({"listen": []})") ==
        "/etc/mirrord/mirrord.json: key 'listen': has 0 entries, at least 1 needed");
  CHECK(MirrordError(R"({})") ==
        "/etc/mirrord/mirrord.json: key 'listen': has 0 entries, at least 1 needed");
}

TEST_CASE("StringConstraintsNameTheKey") {
  CHECK(MirrorfsError(R"(, "mode": "fast")") ==
        "fs.json: key 'mode': \"fast\" is not one of sync, async, durable");
  CHECK(Error(ParseJsonConfig(R"({"source_id": "", "mirror": "b:1"})", MirrorfsSchema(), "f")) ==
        "f: key 'source_id': must not be empty");
  CHECK(Error(ParseJsonConfig(R"({"source_id": "abcdefghijklmnopq", "mirror": "b:1"})",
                              MirrorfsSchema(), "f")) ==
        "f: key 'source_id': \"abcdefghijklmnopq\" is longer than 16 bytes");
  CHECK(Error(ParseJsonConfig(R"({"source_id": "s", "mirror": "backup"})", MirrorfsSchema(),
                              "f")) == "f: key 'mirror': \"backup\" is not a valid HOST:PORT");
  CHECK(MirrordError(R"({"listen": ["h:1", "h:99999"]})") ==
        "/etc/mirrord/mirrord.json: key 'listen[1]': \"h:99999\" is not a valid HOST:PORT");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [{"id": "a", "secret_file": "a.key"}]})") ==
        "/etc/mirrord/mirrord.json: key 'sources[0].secret_file': \"a.key\" is not a valid "
        "absolute path");
}

TEST_CASE("MissingRequiredKeyInsideAListElement") {
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [{"id": "a"}]})") ==
        "/etc/mirrord/mirrord.json: missing required key 'sources[0].secret_file'");
  CHECK(MirrordError(R"({"listen": ["h:1"], "sources": [
      {"id": "a", "secret_file": "/a"}, {"secret_file": "/b"}]})") ==
        "/etc/mirrord/mirrord.json: missing required key 'sources[1].id'");
  CHECK(Error(ParseJsonConfig(R"({"source_id": "s"})", MirrorfsSchema(), "fs.json")) ==
        "fs.json: missing required key 'mirror'");
}

TEST_CASE("SyntaxErrorNamesLineAndColumn") {
  // Line 3, column 7 is the 'x' that cannot start a value.
  std::string text = "{\n  \"listen\": [\"h:1\"],\n  \"a\":x\n}\n";
  std::string msg = MirrordError(text);
  CHECK(msg.rfind("/etc/mirrord/mirrord.json: line 3, column 7: JSON syntax error", 0) == 0);
  CHECK(msg.find("[json.exception") == std::string::npos);
  // A missing closing brace is reported where the input ends.
  msg = MirrordError("{\"listen\": [\"h:1\"]\n");
  CHECK(msg.rfind("/etc/mirrord/mirrord.json: line 2, column 1: JSON syntax error", 0) == 0);
  // Columns count from the last newline, also on line 1.
  CHECK(MirrordError("{\"a\": tru}").rfind("/etc/mirrord/mirrord.json: line 1, column 10: ", 0) ==
        0);
  // Bytes that are not text are escaped, so the message stays one printable line.
  msg = MirrordError("{\"a\": \"\xff\"}");
  CHECK(msg.find("line 1, column 8: JSON syntax error") != std::string::npos);
  CHECK(msg.find('\xff') == std::string::npos);
  CHECK(msg.find("\\xff") != std::string::npos);
  msg = MirrordError("");
  CHECK(msg.rfind("/etc/mirrord/mirrord.json: line 1, column 1: JSON syntax error", 0) == 0);
  // Trailing commas and comments are not JSON.
  CHECK(MirrordError("{\"listen\": [\"h:1\"],}").find("line 1, column 20: JSON syntax error") !=
        std::string::npos);
  CHECK(MirrordError("// c\n{}").find("line 1, column 1: JSON syntax error") != std::string::npos);
}

TEST_CASE("TopLevelMustBeAnObject") {
  CHECK(MirrordError("[1, 2]") ==
        "/etc/mirrord/mirrord.json: expected a JSON object at the top level, got an array");
  CHECK(MirrordError("\"x\"") ==
        "/etc/mirrord/mirrord.json: expected a JSON object at the top level, got a string");
  CHECK(MirrordError("null") ==
        "/etc/mirrord/mirrord.json: expected a JSON object at the top level, got null");
}

TEST_CASE("DuplicateKeysAreRefusedWithTheirPath") {
  CHECK(MirrordError(R"({"listen": ["a:1"], "listen": ["b:2"]})") ==
        "/etc/mirrord/mirrord.json: duplicate key 'listen'");
  CHECK(MirrordError(R"({"listen": ["a:1"], "sources": [
      {"id": "a", "secret_file": "/a"},
      {"id": "b", "secret_file": "/b", "retention": {"max_age": 1, "max_age": 2}, "id": "c"}]})") ==
        "/etc/mirrord/mirrord.json: duplicate key 'sources[1].retention.max_age'");
  // Scalars and arrays between objects do not confuse the element count.
  CHECK(ParseJsonConfig(R"({"listen": ["a:1"], "sources": [
      {"id": "a", "secret_file": "/a"}, [], 3, {"id": "b", "secret_file": "/b"}]})",
                        MirrordSchema(), kFile)
            .status()
            .message() ==
        "/etc/mirrord/mirrord.json: key 'sources[1]': expected an object, got an "
        "array");
  // The same key in sibling objects is not a duplicate.
  CHECK(ParseJsonConfig(R"({"listen": ["a:1"], "sources": [
      {"id": "a", "secret_file": "/a"}, {"id": "b", "secret_file": "/b"}]})",
                        MirrordSchema(), kFile)
            .ok());
}

TEST_CASE("DuplicatePathsCountArrayElementsOfEveryKind") {
  // Unknown keys are reported after the duplicate check, so the path must be exact even
  // across nested arrays and scalars.
  CHECK(MirrordError(R"({"x": [1, [2, {"k": 1}], {"a": {"k": 1, "k": 2}}]})") ==
        "/etc/mirrord/mirrord.json: duplicate key 'x[2].a.k'");
}

TEST_CASE("ConfigFileIsReadAndUnreadableFileIsIOError") {
  TempDir dir;
  std::string path = dir / "mirrord.json";
  WriteFileBytes(path, R"({"listen": ["h:1"], "limits": {"memory_size": "1G"}})");
  Result<Config> r = LoadConfigFile(path, MirrordSchema());
  REQUIRE(r.ok());
  CHECK(r->GetObject("limits").GetSize("memory_size") == 1ull << 30);

  WriteFileBytes(path, R"({"listen": ["h:1"], "limits": {"memory_size": "1Q"}})");
  r = LoadConfigFile(path, MirrordSchema());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().rfind(path + ": key 'limits.memory_size': \"1Q\" is not a size", 0) ==
        0);

  r = LoadConfigFile(dir / "missing.json", MirrordSchema());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kIOError);
  CHECK(r.status().error_number() == ENOENT);
  CHECK(r.status().message() ==
        dir / "missing.json" + ": cannot open config file: No such file or directory");

  r = LoadConfigFile(dir.path(), MirrordSchema());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kIOError);
  CHECK(r.status().error_number() == EISDIR);
  CHECK(r.status().message().rfind(dir.path() + ": cannot read config file", 0) == 0);
}

TEST_CASE("OptionOverridesFileValue") {
  TempDir dir;
  std::string path = dir / "fs.json";
  WriteFileBytes(path, R"({"source_id": "src1", "mirror": "backup:7000", "journal_size": "64M",
                           "mode": "async"})");
  Result<Config> r = LoadConfig(MirrorfsSchema(), path, {"journal_size=1G", "ro"});
  REQUIRE(r.ok());
  CHECK(r->GetSize("journal_size") == 1ull << 30);             // -o wins
  CHECK(r->GetString("mode") == "async");                      // file value kept
  CHECK(r->GetBool("ro") == true);                             // -o flag
  CHECK(r->GetDuration("cp_interval") == milliseconds(5000));  // default

  // A finished config takes overrides too.
  Result<Config> file = LoadConfigFile(path, MirrorfsSchema());
  REQUIRE(file.ok());
  Config c = *file;
  REQUIRE(ApplyOption(c, "mode", "durable", "-o option").ok());
  CHECK(c.GetString("mode") == "durable");
  CHECK(file->GetString("mode") == "async");  // a Config is a value
}

TEST_CASE("RequiredKeyMayComeFromOptions") {
  TempDir dir;
  std::string path = dir / "fs.json";
  WriteFileBytes(path, R"({"mirror": "backup:7000"})");
  Result<Config> r = LoadConfig(MirrorfsSchema(), path, {"source_id=s9"});
  REQUIRE(r.ok());
  CHECK(r->GetString("source_id") == "s9");
  // Neither gives it: the error names the file.
  CHECK(Error(LoadConfig(MirrorfsSchema(), path, {})) ==
        path + ": missing required key 'source_id'");
  // No file at all.
  r = LoadConfig(MirrorfsSchema(), "", {"source_id=s9", "mirror=h:1", "cp_interval=500ms"});
  REQUIRE(r.ok());
  CHECK(r->GetDuration("cp_interval") == milliseconds(500));
  CHECK(Error(LoadConfig(MirrorfsSchema(), "", {"source_id=s9"})) ==
        "-o option: missing required key 'mirror'");
}

TEST_CASE("BoolFlagsFromOptions") {
  Result<Config> r =
      LoadConfig(MirrorfsSchema(), "", {"source_id=s", "mirror=h:1", "allow_other", "ro=no"});
  REQUIRE(r.ok());
  CHECK(r->GetBool("allow_other") == true);
  CHECK(r->GetBool("ro") == false);
  Config c = *r;
  for (const char* option : {"ro=yes", "ro=1", "ro=TRUE", "ro=on"}) {
    REQUIRE(ApplyOption(c, "ro=false", "-o option").ok());
    REQUIRE(ApplyOption(c, option, "-o option").ok());
    CHECK(c.GetBool("ro") == true);
  }
  Status s = ApplyOption(c, "ro=maybe", "-o option");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "-o option: key 'ro': \"maybe\" is not a boolean (use true or false)");
}

TEST_CASE("OptionErrorsNameTheKeyAndLeaveConfigUnchanged") {
  Result<Config> r = ParseJsonConfig(MirrorfsJson(), MirrorfsSchema(), "fs.json");
  REQUIRE(r.ok());
  Config c = *r;
  Status s = ApplyOption(c, "journal_size=12Q", "-o option");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() ==
        "-o option: key 'journal_size': \"12Q\" is not a size (use a number with K, M, G or T)");
  CHECK(c.GetSize("journal_size") == 256ull << 20);

  s = ApplyOption(c, "jounral_size=1G", "-o option");
  CHECK(s.code() == Code::kNotFound);  // a caller may hand unknown options to libfuse
  CHECK(s.message() == "-o option: unknown key 'jounral_size' (did you mean 'journal_size'?)");

  s = ApplyOption(c, "journal_size", "-o option");
  CHECK(s.message() == "-o option: key 'journal_size': needs a value (journal_size=SIZE)");
  s = ApplyOption(c, "threads=0", "-o option");
  CHECK(s.message() == "-o option: key 'threads': \"0\" is below the minimum 1");
  s = ApplyOption(c, "mode=fast", "-o option");
  CHECK(s.message() == "-o option: key 'mode': \"fast\" is not one of sync, async, durable");
  CHECK(c.GetString("mode") == "sync");
  s = ApplyOption(c, "mode.x=1", "-o option");
  CHECK(s.message() == "-o option: key 'mode': has no nested keys");
  // An empty value is a value: strings may be empty unless NonEmpty says otherwise.
  s = ApplyOption(c, "source_id=", "-o option");
  CHECK(s.message() == "-o option: key 'source_id': must not be empty");
  CHECK(c.GetString("source_id") == "src1");
  REQUIRE(ApplyOption(c, "secret_file=", "-o option").ok());
  CHECK(c.GetString("secret_file").empty());
  // The value may itself contain '='.
  REQUIRE(ApplyOption(c, "journal=/j=1", "-o option").ok());
  CHECK(c.GetString("journal") == "/j=1");
}

TEST_CASE("NestedKeysFromOptionsButNotLists") {
  Result<Config> r = ParseJsonConfig(R"({"listen": ["h:1"], "limits": {"max_record": "8K"}})",
                                     MirrordSchema(), kFile);
  REQUIRE(r.ok());
  Config c = *r;
  REQUIRE(ApplyOption(c, "limits.max_frame=1M", "--set").ok());
  CHECK(c.GetObject("limits").GetSize("max_frame") == 1u << 20);
  CHECK(c.GetObject("limits").GetSize("max_record") == 8192);  // siblings kept

  Status s = ApplyOption(c, "limits.max_frame=1K", "--set");
  CHECK(s.message() == "--set: key 'limits.max_frame': \"1K\" is below the minimum 4096 (4K)");
  s = ApplyOption(c, "limits.max_fame=1M", "--set");
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.message() == "--set: unknown key 'limits.max_fame' (did you mean 'limits.max_frame'?)");
  s = ApplyOption(c, "listen=h:2", "--set");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "--set: key 'listen': can only be set in a config file");
  s = ApplyOption(c, "limits=1M", "--set");
  CHECK(s.message() == "--set: key 'limits': is an object: set its keys (limits.KEY=VALUE)");
  CHECK(c.GetStringList("listen") == std::vector<std::string>{"h:1"});
}

TEST_CASE("ShorthandObjectFromOptions") {
  Schema retention;
  retention.Duration("max_age", "", Default("0s"));
  retention.Size("max_bytes", "");
  Schema s;
  s.Object("retention", "", retention).Shorthand("max_age");
  Result<Config> r = LoadConfig(s, "", {"retention=2h", "retention.max_bytes=1G"});
  REQUIRE(r.ok());
  CHECK(r->GetObject("retention").GetDuration("max_age") == std::chrono::hours(2));
  CHECK(r->GetObject("retention").GetSize("max_bytes") == 1ull << 30);
  Result<Config> bad = LoadConfig(s, "", {"retention=2x"});
  CHECK(
      Error(bad) ==
      "-o option: key 'retention': \"2x\" is not a duration (use a number with ms, s, m, h or d)");
}

TEST_CASE("JsonNumbersForSizesAreBytesAndForDurationsSeconds") {
  Result<Config> r = ParseJsonConfig(
      MirrorfsJson(R"(, "journal_size": 1048576, "cp_interval": 2, "max_lag": "250ms")"),
      MirrorfsSchema(), "fs.json");
  REQUIRE(r.ok());
  CHECK(r->GetSize("journal_size") == 1u << 20);
  CHECK(r->GetDuration("cp_interval") == milliseconds(2000));
  REQUIRE(r->Has("max_lag"));
  CHECK(r->GetDuration("max_lag") == milliseconds(250));
}

TEST_CASE("FileKeyOrderDecidesWhichErrorComesFirst") {
  // "zz" is unknown and "ro" has the wrong type; "zz" comes first in the file.
  CHECK(MirrorfsError(R"(, "zz": 1, "ro": 5)") == "fs.json: unknown key 'zz'");
  CHECK(MirrorfsError(R"(, "ro": 5, "zz": 1)") == "fs.json: key 'ro': expected a boolean, got 5");
}

TEST_CASE("HelpTextListsEveryOption") {
  std::string help = MirrordSchema().HelpText();
  CHECK(help.find("  listen=LIST") != std::string::npos);
  CHECK(help.find("  limits.max_frame=SIZE") != std::string::npos);
  CHECK(help.find("Largest wire frame (default: 4M)") != std::string::npos);
  CHECK(help.find("  sources[].id=STRING") != std::string::npos);
  CHECK(help.find("Source id (required)") != std::string::npos);
  std::string fs = MirrorfsSchema().HelpText();
  CHECK(fs.find("  mode=sync|async|durable") != std::string::npos);
}

TEST_CASE("DeeplyNestedInputIsAnErrorNotACrash") {
  constexpr size_t kDepth = 200000;
  std::string open(kDepth, '[');
  CHECK(MirrordError("{\"x\": " + open).find("JSON syntax error") != std::string::npos);
  std::string nested = "{\"x\": " + open + std::string(kDepth, ']') + "}";
  CHECK(MirrordError(nested) == "/etc/mirrord/mirrord.json: unknown key 'x'");
}

TEST_CASE("InvalidSchemaDefaultIsReportedAsTheSchemas") {
  Schema s;
  s.Enum("mode", "", {"sync", "async"}, Default("fast"));
  s.Size("journal_size", "", Default("1M")).Min(2 << 20);
  CHECK(Error(ParseJsonConfig("{\"journal_size\": \"4M\"}", s, "f")) ==
        "f: key 'mode': schema default is invalid: \"fast\" is not one of sync, async");
  CHECK(Error(ParseJsonConfig("{\"mode\": \"sync\"}", s, "f")) ==
        "f: key 'journal_size': schema default is invalid: \"1M\" is below the minimum 2097152 "
        "(2M)");
}
