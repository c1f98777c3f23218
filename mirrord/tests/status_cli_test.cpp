#include "mirrord/status_cli.h"

#include <doctest/doctest.h>

using namespace mirror::d;
using nlohmann::json;

namespace {

json Source(const std::string& id, bool connected, const std::string& state) {
  return {{"id", id},         {"connected", connected},
          {"state", state},   {"received_seq", 5},
          {"applied_seq", 3}, {"last_error", state == "broken" ? "apply failed" : ""}};
}

}  // namespace

TEST_CASE("StatusExitCodes") {
  json reply = {{"ok", true},
                {"sources",
                 {Source("a", true, "connected"), Source("b", false, "disconnected"),
                  Source("c", true, "broken")}}};
  CHECK(StatusExitCode(SelectSources(reply, std::string("a"))) == kStatusHealthy);
  CHECK(StatusExitCode(SelectSources(reply, std::string("b"))) == kStatusLagging);
  CHECK(StatusExitCode(SelectSources(reply, std::string("c"))) == kStatusBroken);
  CHECK(StatusExitCode(SelectSources(reply, std::nullopt)) == kStatusBroken);
  CHECK(SelectSources(reply, std::string("zz")).empty());
  CHECK(StatusExitCode(json::array()) == kStatusHealthy);
  json lagging = Source("a", true, "connected");
  lagging["lag_seconds"] = 30.5;
  CHECK(StatusExitCode(json::array({lagging})) == kStatusHealthy);
  CHECK(StatusExitCode(json::array({lagging}), 60) == kStatusHealthy);
  CHECK(StatusExitCode(json::array({lagging}), 30) == kStatusLagging);
}

TEST_CASE("StatusTextNamesEverySource") {
  json sources = {Source("a", true, "connected"), Source("c", true, "broken")};
  std::string text = FormatStatusText(sources);
  CHECK(text.find("source a: connected") != std::string::npos);
  CHECK(text.find("source c: broken") != std::string::npos);
  CHECK(text.find("last error: apply failed") != std::string::npos);
  CHECK(text.find("received: 5") != std::string::npos);
  CHECK(FormatStatusText(json::array()) == "no sources\n");
}

TEST_CASE("StatusShowsAResyncAsNotConsistent") {
  json resync = Source("r", true, "resync");
  resync["resync"] = true;
  resync["resync_until_seq"] = 0;
  CHECK(StatusExitCode(json::array({resync})) == kStatusLagging);
  std::string text = FormatStatusText(json::array({resync}));
  CHECK(text.find("source r: resync") != std::string::npos);
  CHECK(text.find("resync: in progress, the image is not consistent (the source is still "
                  "sending differences)") != std::string::npos);
  resync["resync_until_seq"] = 4100;
  text = FormatStatusText(json::array({resync}));
  CHECK(text.find("until seq 4100 is applied") != std::string::npos);
  CHECK(FormatStatusText(json::array({Source("a", true, "connected")})).find("resync") ==
        std::string::npos);
}

TEST_CASE("APromotedSourceIsHealthyAndSaysItIsAPrimary") {
  json promoted = Source("p", false, "promoted");
  promoted["promoted"] = true;
  promoted["promoted_seq"] = 812;
  promoted["epoch"] = 2;
  CHECK(StatusExitCode(json::array({promoted})) == kStatusHealthy);
  // Not connected, but promoted: the source is fenced on purpose, nothing lags.
  CHECK(StatusExitCode(json::array({promoted, Source("b", false, "disconnected")})) ==
        kStatusLagging);
  std::string text = FormatStatusText(json::array({promoted}));
  CHECK(text.find("source p: promoted") != std::string::npos);
  CHECK(text.find("a primary since seq 812 (epoch 2); the old source is fenced") !=
        std::string::npos);
}
