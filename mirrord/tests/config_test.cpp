#include "mirrord/config.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "common/secret_file.h"
#include "tests/unit/test_util.h"

using namespace mirror::d;
using mirror::common::Code;
using mirror::test::TempDir;
using mirror::test::WriteFileBytes;

namespace {

std::string Secret(const TempDir& dir, const std::string& name, mode_t mode = 0600) {
  WriteFileBytes(dir / name, "s3cret\n");
  REQUIRE(chmod((dir / name).c_str(), mode) == 0);
  return dir / name;
}

std::string Config(const TempDir& dir, const std::string& json) {
  WriteFileBytes(dir / "mirrord.json", json);
  return dir / "mirrord.json";
}

}  // namespace

TEST_CASE("ConfigQuickStartNeedsStateDirAndTakesAnySource") {
  TempDir dir;
  QuickStartFlags flags;
  flags.listen = {"127.0.0.1:0"};
  flags.secret_file = Secret(dir, "secret");
  CHECK(LoadMirrordConfig(flags).status().code() == Code::kInvalidArgument);
  flags.state_dir = dir / "state";
  auto c = LoadMirrordConfig(flags);
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(c->listen == std::vector<std::string>{"127.0.0.1:0"});
  CHECK(c->any_source_secret == std::optional<std::string>("s3cret"));
  CHECK(c->Find("whoever") == nullptr);
  CHECK(c->max_record_bytes == mirror::common::kDefaultMaxRecordBytes);
  CHECK(c->StoreOptionsFor("x").memory_half_bytes == 32u << 20);
}

TEST_CASE("ConfigFileSourcesTable") {
  TempDir dir;
  const std::string secret = Secret(dir, "secret");
  QuickStartFlags flags;
  flags.config_path = Config(
      dir, R"({"listen":["127.0.0.1:7400","[::1]:7401"],"state_dir":")" + (dir / "st") +
               R"(","limits":{"memory_size":"1M","max_record":"256K","flush_delay":"5ms",)"
               R"("lazy_flush_delay":"1s"},)"
               R"("sources":[{"id":"a","secret_file":")" +
               secret + R"(","allow_devices":true,"retention":"1h"},{"id":"b","secret_file":")" +
               secret + R"("}]})");
  auto c = LoadMirrordConfig(flags);
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(c->listen.size() == 2);
  CHECK(c->state_dir == dir / "st");
  CHECK_FALSE(c->any_source_secret);
  REQUIRE(c->Find("a") != nullptr);
  CHECK(c->Find("a")->secret == "s3cret");
  StoreOptions a = c->StoreOptionsFor("a");
  CHECK(a.allow_devices);
  CHECK(a.retention == std::chrono::hours(1));
  CHECK(a.memory_half_bytes == 512 * 1024);
  CHECK(a.flush_delay == std::chrono::milliseconds(5));
  CHECK(a.lazy_flush_delay == std::chrono::seconds(1));
  CHECK_FALSE(c->StoreOptionsFor("b").allow_devices);
  // Flags override the file.
  flags.listen = {"127.0.0.1:0"};
  flags.state_dir = dir / "other";
  c = LoadMirrordConfig(flags);
  REQUIRE(c.ok());
  CHECK(c->listen == std::vector<std::string>{"127.0.0.1:0"});
  CHECK(c->state_dir == dir / "other");
}

TEST_CASE("ConfigErrorsNameTheKey") {
  TempDir dir;
  const std::string secret = Secret(dir, "secret");
  QuickStartFlags flags;
  flags.config_path = Config(
      dir, R"({"sources":[{"id":"a","secret_file":")" + secret + R"(","allow_devices":"yes"}]})");
  auto c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("sources[0].allow_devices") != std::string::npos);
  flags.config_path =
      Config(dir, R"({"sources":[{"id":"a/b","secret_file":")" + secret + R"("}]})");
  c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("sources[0].id") != std::string::npos);
  flags.config_path = Config(dir, R"({"sources":[{"id":"a","secret_file":")" + secret +
                                      R"("},{"id":"a","secret_file":")" + secret + R"("}]})");
  c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("listed twice") != std::string::npos);
  flags.config_path = Config(dir, R"({"limits":{"memory_size":"256K","max_record":"200K"},)"
                                  R"("sources":[{"id":"a","secret_file":")" +
                                      secret + R"("}]})");
  c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("limits.max_record") != std::string::npos);
  flags.config_path = Config(dir, R"({"state_dir":"/x"})");
  c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("no sources") != std::string::npos);
  flags.config_path = Config(dir, R"({"listen":["nope"],"secret_file":")" + secret + R"("})");
  c = LoadMirrordConfig(flags);
  CHECK(c.status().message().find("HOST:PORT") != std::string::npos);
}

TEST_CASE("ConfigRefusesSecretFilesOthersCanRead") {
  TempDir dir;
  QuickStartFlags flags;
  flags.state_dir = dir / "st";
  flags.secret_file = Secret(dir, "secret", 0644);
  auto c = LoadMirrordConfig(flags);
  CHECK(c.status().code() == Code::kPermissionDenied);
  CHECK(c.status().message().find("chmod 600") != std::string::npos);
  WriteFileBytes(dir / "empty", "\n");
  REQUIRE(chmod((dir / "empty").c_str(), 0600) == 0);
  flags.secret_file = dir / "empty";
  CHECK(LoadMirrordConfig(flags).status().message().find("empty") != std::string::npos);
  flags.secret_file = dir / "missing";
  CHECK(LoadMirrordConfig(flags).status().code() == Code::kNotFound);
}

TEST_CASE("SplitHostPortForms") {
  std::string host;
  uint16_t port = 0;
  REQUIRE(mirror::common::SplitHostPort("127.0.0.1:7400", &host, &port).ok());
  CHECK(host == "127.0.0.1");
  CHECK(port == 7400);
  REQUIRE(mirror::common::SplitHostPort("[::1]:0", &host, &port).ok());
  CHECK(host == "::1");
  CHECK(port == 0);
  CHECK_FALSE(mirror::common::SplitHostPort("127.0.0.1", &host, &port).ok());
  CHECK_FALSE(mirror::common::SplitHostPort("h:65536", &host, &port).ok());
  CHECK_FALSE(mirror::common::SplitHostPort(":80", &host, &port).ok());
}

TEST_CASE("SourceIdsThatCannotNameADirectoryAreInvalid") {
  CHECK(ValidSourceId("web1"));
  CHECK(ValidSourceId("a.b-c_d"));
  CHECK_FALSE(ValidSourceId(""));
  CHECK_FALSE(ValidSourceId("."));
  CHECK_FALSE(ValidSourceId(".."));
  CHECK_FALSE(ValidSourceId(".hidden"));
  CHECK_FALSE(ValidSourceId("a/b"));
  CHECK_FALSE(ValidSourceId("mirrord.sock"));
  CHECK_FALSE(ValidSourceId(std::string(128, 'a')));
}
