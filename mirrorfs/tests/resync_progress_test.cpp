// How a resync's progress is shown: the figures status reports, the line people read,
// and the STATUS= datagram systemd gets through $NOTIFY_SOCKET.
#include "mirrorfs/resync_progress.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/unique_fd.h"
#include "tests/unit/test_util.h"

namespace {

using mirror::fs::DescribeProgress;
using mirror::fs::FiguresOf;
using mirror::fs::ResyncProgress;

ResyncProgress Halfway() {
  ResyncProgress p;
  p.phase = "data";
  p.entries = 1200;
  p.files_total = 40;
  p.files_done = 12;
  p.bytes_total = 300u << 20;
  p.bytes_done = 150u << 20;
  p.bytes_sent = 3u << 20;
  p.seconds = 3;
  return p;
}

TEST_CASE("FiguresArePercentRateAndTimeLeft") {
  auto f = FiguresOf(Halfway());
  CHECK(f.percent == doctest::Approx(50));
  CHECK(f.bytes_per_second == doctest::Approx(50.0 * (1 << 20)));
  CHECK(f.seconds_left == doctest::Approx(3));
  ResyncProgress start;
  start.phase = "namespace";
  CHECK(FiguresOf(start).seconds_left == -1);  // no rate yet: unknown
  ResyncProgress done = Halfway();
  done.phase = "done";
  CHECK(FiguresOf(done).percent == 100);
  CHECK(FiguresOf(done).seconds_left == 0);
}

TEST_CASE("TheLineSaysWhatKindPhasePercentRateAndTimeLeft") {
  ResyncProgress p = Halfway();
  p.baseline = true;
  const std::string line = DescribeProgress(p);
  CHECK_MESSAGE(line.rfind("baseline: data 50%", 0) == 0, line);
  CHECK_MESSAGE(line.find("50.0 MiB/s") != std::string::npos, line);
  CHECK_MESSAGE(line.find("3 s left") != std::string::npos, line);
  CHECK_MESSAGE(line.find("12 of 40 files") != std::string::npos, line);
  CHECK_MESSAGE(line.find("3.0 MiB sent") != std::string::npos, line);
}

TEST_CASE("SystemdGetsStatusThroughNotifySocket") {
  mirror::test::TempDir dir;
  const std::string path = dir.path() + "/notify";
  mirror::common::UniqueFd sock(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(sock);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(setenv("NOTIFY_SOCKET", path.c_str(), 1) == 0);
  {
    mirror::fs::ResyncReporter reporter;
    reporter.Report(Halfway());
  }
  unsetenv("NOTIFY_SOCKET");
  char buf[512] = {};
  ssize_t n = recv(sock.get(), buf, sizeof(buf) - 1, MSG_DONTWAIT);
  REQUIRE(n > 0);
  const std::string got(buf, static_cast<size_t>(n));
  CHECK_MESSAGE(got.rfind("STATUS=resync: data 50%", 0) == 0, got);
}

}  // namespace
