// Tests of the control socket: the server (Start, serving, shutdown) and the client.
#include <doctest/doctest.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "control/control_client.h"
#include "control/control_io.h"
#include "control/control_server.h"
#include "tests/unit/test_util.h"

using mirror::common::Code;
using mirror::common::UniqueFd;
using mirror::control::ControlServer;
using mirror::control::Request;
using nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

json Echo(const json& request) { return {{"ok", true}, {"echo", request}}; }

std::unique_ptr<ControlServer> MustStart(const std::string& path,
                                         mirror::control::Handler handler = Echo) {
  auto server = ControlServer::Start(path, std::move(handler));
  REQUIRE_MESSAGE(server.ok(), server.status().ToString());
  return std::move(server).value();
}

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// A blocking client socket connected to `path` (with 5 s send/receive timeouts), or -1.
UniqueFd RawConnect(const std::string& path) {
  sockaddr_un addr;
  socklen_t len;
  REQUIRE(mirror::control::MakeUnixAddress(path, &addr, &len));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  struct timeval tv = {5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) return UniqueFd();
  return fd;
}

// Sends `bytes` as they are and returns everything the server sends back until it closes.
std::string RawExchange(const std::string& path, const std::string& bytes) {
  UniqueFd fd = RawConnect(path);
  REQUIRE(fd);
  (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);  // may be cut short
  std::string reply;
  char buf[4096];
  for (int i = 0; i < 1000; ++i) {  // bounded: the server closes after one line
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  return reply;
}

json ParseReplyLine(const std::string& reply) {
  REQUIRE(!reply.empty());
  CHECK(reply.back() == '\n');
  json parsed = json::parse(reply, nullptr, false);
  REQUIRE(!parsed.is_discarded());
  return parsed;
}

// Binds a socket at `path` and closes it: the file stays, nobody answers.
void MakeStaleSocket(const std::string& path) {
  sockaddr_un addr;
  socklen_t len;
  REQUIRE(mirror::control::MakeUnixAddress(path, &addr, &len));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
}

// Lets handlers block until the test releases them; every wait is bounded.
class Gate {
 public:
  // Called by a handler: counts it in, waits up to 10 s for Open.
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    max_inside_ = std::max(max_inside_, ++inside_);
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(10), [this] { return open_; });
    --inside_;
  }
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int max_inside() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_inside_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  int inside_ = 0;
  int max_inside_ = 0;
  bool open_ = false;
};

}  // namespace

TEST_CASE("RequestAndReplyRoundTrip") {
  mirror::test::TempDir dir;
  const std::string path = dir / "run/sub/ctl.sock";
  auto server = MustStart(path);
  CHECK(server->path() == path);
  json request = {{"cmd", "status"}, {"n", 42}, {"text", "caf\xc3\xa9 \"quoted\"\nline"}};
  auto reply = Request(path, request, milliseconds(5000));
  REQUIRE_MESSAGE(reply.ok(), reply.status().ToString());
  CHECK((*reply)["ok"] == true);
  CHECK((*reply)["echo"] == request);
}

TEST_CASE("SocketIsMode0600InACreatedDirectoryOf0700") {
  mirror::test::TempDir dir;
  const std::string path = dir / "run/ctl.sock";
  auto server = MustStart(path);
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((dir / "run").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("SlowHandlerDoesNotBlockAnotherClient") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  Gate gate;
  std::atomic<bool> slow_done{false};
  auto server = MustStart(path, [&](const json& request) -> json {
    if (request["cmd"] == "slow") {
      gate.Enter();
      slow_done = true;
    }
    return {{"ok", true}, {"cmd", request["cmd"]}};
  });
  bool slow_ok = false;
  std::thread slow([&] {
    auto reply = Request(path, {{"cmd", "slow"}}, milliseconds(20000));
    slow_ok = reply.ok() && (*reply)["ok"] == true;
  });
  REQUIRE(gate.WaitEntered(1));
  auto start = SteadyClock::now();
  auto fast = Request(path, {{"cmd", "fast"}}, milliseconds(3000));
  CHECK(fast.ok());
  CHECK(SecondsSince(start) < 2.0);
  CHECK(!slow_done);  // the fast reply came while the slow handler was still running
  gate.Open();
  slow.join();
  CHECK(slow_ok);
}

TEST_CASE("AtMostEightConnectionsAreServedAtOnceAndTheNinthWaits") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  Gate gate;
  auto server = MustStart(path, [&](const json& request) -> json {
    if (request["cmd"] == "slow") gate.Enter();
    return {{"ok", true}};
  });
  constexpr int kSlow = static_cast<int>(mirror::control::kMaxConcurrentConnections);
  std::atomic<int> slow_ok{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.emplace_back([&] {
      auto reply = Request(path, {{"cmd", "slow"}}, milliseconds(20000));
      if (reply.ok() && (*reply)["ok"] == true) ++slow_ok;
    });
  }
  REQUIRE(gate.WaitEntered(kSlow));
  // The ninth is accepted by the kernel (backlog) but not served until a slot frees.
  auto ninth = Request(path, {{"cmd", "fast"}}, milliseconds(300));
  CHECK(ninth.status().code() == Code::kDeadlineExceeded);
  gate.Open();
  for (std::thread& t : slow) t.join();
  CHECK(slow_ok == kSlow);
  CHECK(gate.max_inside() == kSlow);
  auto after = Request(path, {{"cmd", "fast"}}, milliseconds(3000));
  CHECK(after.ok());
}

TEST_CASE("StaleSocketIsReplaced") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  MakeStaleSocket(path);
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  auto server = MustStart(path);
  auto reply = Request(path, {{"cmd", "status"}}, milliseconds(3000));
  CHECK(reply.ok());
}

TEST_CASE("LiveServerMakesStartFailWithAlreadyExists") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  auto first = MustStart(path);
  auto second = ControlServer::Start(path, Echo);
  REQUIRE(!second.ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  // The first server's socket was left in place and still answers.
  auto reply = Request(path, {{"cmd", "status"}}, milliseconds(3000));
  CHECK(reply.ok());
}

TEST_CASE("FileThatIsNotASocketIsNeverReplaced") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  mirror::test::WriteFileBytes(path, "precious");
  auto server = ControlServer::Start(path, Echo);
  REQUIRE(!server.ok());
  CHECK(server.status().code() == Code::kAlreadyExists);
  CHECK(mirror::test::ReadFileBytes(path) == "precious");
}

TEST_CASE("NoServerIsUnavailableQuickly") {
  mirror::test::TempDir dir;
  auto start = SteadyClock::now();
  auto missing = Request(dir / "none.sock", {{"cmd", "status"}}, milliseconds(5000));
  CHECK(missing.status().code() == Code::kUnavailable);
  CHECK(missing.status().message().find(dir / "none.sock") != std::string::npos);
  MakeStaleSocket(dir / "stale.sock");
  auto stale = Request(dir / "stale.sock", {{"cmd", "status"}}, milliseconds(5000));
  CHECK(stale.status().code() == Code::kUnavailable);
  CHECK(SecondsSince(start) < 1.0);
}

TEST_CASE("ServerThatNeverRepliesIsDeadlineExceeded") {
  mirror::test::TempDir dir;
  const std::string path = dir / "mute.sock";
  sockaddr_un addr;
  socklen_t len;
  REQUIRE(mirror::control::MakeUnixAddress(path, &addr, &len));
  UniqueFd mute(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::bind(mute.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
  REQUIRE(::listen(mute.get(), 4) == 0);  // connections complete in the backlog; no reply
  auto start = SteadyClock::now();
  auto reply = Request(path, {{"cmd", "status"}}, milliseconds(300));
  double took = SecondsSince(start);
  CHECK(reply.status().code() == Code::kDeadlineExceeded);
  CHECK(took >= 0.29);
  CHECK(took < 2.0);
}

TEST_CASE("MalformedAndOversizedRequestsGetErrorsAndServingGoesOn") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  std::atomic<int> handled{0};
  auto server = MustStart(path, [&](const json& request) -> json {
    ++handled;
    return Echo(request);
  });
  const std::vector<std::string> bad = {"hello\n", "[1,2]\n", "{\"nocmd\":1}\n", "{\"cmd\":7}\n",
                                        "{\"cmd\":\"x\"\n"};
  for (const std::string& line : bad) {
    CAPTURE(line);
    json reply = ParseReplyLine(RawExchange(path, line));
    CHECK(reply["ok"] == false);
    CHECK(reply["error"].get<std::string>().find("malformed request") == 0);
  }
  json big = ParseReplyLine(RawExchange(path, std::string(70 * 1024, 'x') + "\n"));
  CHECK(big["ok"] == false);
  CHECK(big["error"].get<std::string>().find("larger than 65536") != std::string::npos);
  // The same through the client: the server refuses early, the client still reads why.
  auto huge =
      Request(path, {{"cmd", "status"}, {"pad", std::string(200 * 1024, 'y')}}, milliseconds(5000));
  REQUIRE_MESSAGE(huge.ok(), huge.status().ToString());
  CHECK((*huge)["ok"] == false);
  CHECK(handled == 0);
  // A request of exactly the limit is still served.
  std::string fits = json{{"cmd", "status"}, {"pad", ""}}.dump();
  fits.insert(fits.size() - 2, std::string(65536 - fits.size(), 'z'));
  REQUIRE(fits.size() == 65536);
  CHECK(ParseReplyLine(RawExchange(path, fits + "\n"))["ok"] == true);
  auto good = Request(path, {{"cmd", "status"}}, milliseconds(3000));
  REQUIRE(good.ok());
  CHECK((*good)["ok"] == true);
  CHECK(handled == 2);
}

TEST_CASE("HandlerExceptionsAndMalformedRepliesBecomeErrorReplies") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  auto server = MustStart(path, [](const json& request) -> json {
    if (request["cmd"] == "throw") throw std::runtime_error("boom");
    if (request["cmd"] == "array") return json::array({1, 2});
    if (request["cmd"] == "no-ok") return {{"state", "running"}};
    return {{"ok", true}};
  });
  for (const char* cmd : {"throw", "array", "no-ok"}) {
    CAPTURE(cmd);
    auto reply = Request(path, {{"cmd", cmd}}, milliseconds(3000));
    REQUIRE(reply.ok());
    CHECK((*reply)["ok"] == false);
    CHECK((*reply)["error"].get<std::string>().find("internal error") == 0);
  }
  CHECK((*Request(path, {{"cmd", "fine"}}, milliseconds(3000)))["ok"] == true);
}

namespace {

// Forks a child that drops to uid/gid 65534 and asks `path` for a status with raw system
// calls only (the parent has threads). Its exit code: 0 it got {"ok":true...}; 10 connect
// failed with EACCES; 11 the server answered "permission denied"; 20+ something else.
int AskAsNobody(const std::string& path) {
  sockaddr_un addr;
  socklen_t len;
  REQUIRE(mirror::control::MakeUnixAddress(path, &addr, &len));
  static const char kRequest[] = "{\"cmd\":\"status\"}\n";
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(20);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) ::_exit(21);
    struct timeval tv = {5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      ::_exit(errno == EACCES ? 10 : 22);
    }
    if (::send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) != sizeof(kRequest) - 1)
      ::_exit(23);
    char buf[512];
    std::size_t got = 0;
    for (int i = 0; i < 100 && got < sizeof(buf) - 1; ++i) {
      ssize_t n = ::read(fd, buf + got, sizeof(buf) - 1 - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    buf[got] = '\0';
    if (std::strstr(buf, "\"ok\":true") != nullptr) ::_exit(0);
    if (std::strstr(buf, "permission denied") != nullptr) ::_exit(11);
    ::_exit(24);
  }
  for (int i = 0; i < 1000; ++i) {  // at most 10 s
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -2;
}

}  // namespace

TEST_CASE("NonRootPeerGetsNoStatus") {
  if (::geteuid() != 0) {
    MESSAGE("needs root to change uid in a child; skipped");
    return;
  }
  mirror::test::TempDir dir;
  const std::string run = dir / "run";
  const std::string path = run + "/ctl.sock";
  auto server = MustStart(path);
  // As created: the 0700 directory keeps others out.
  CHECK(AskAsNobody(path) == 10);
  // With the directories opened up, the socket's mode 0600 still refuses the connection.
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  REQUIRE(::chmod(run.c_str(), 0755) == 0);
  CHECK(AskAsNobody(path) == 10);
  // With the socket opened up too, SO_PEERCRED is the last gate.
  REQUIRE(::chmod(path.c_str(), 0666) == 0);
  CHECK(AskAsNobody(path) == 11);
  // Root is still served.
  CHECK((*Request(path, {{"cmd", "status"}}, milliseconds(3000)))["ok"] == true);
}

TEST_CASE("DestructorUnlinksAndReturnsPromptlyWithIdleClients") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  auto server = MustStart(path);
  UniqueFd silent = RawConnect(path);  // sends nothing
  REQUIRE(silent);
  UniqueFd partial = RawConnect(path);  // sends half a line
  REQUIRE(partial);
  REQUIRE(::send(partial.get(), "{\"cmd\":", 7, MSG_NOSIGNAL) == 7);
  std::this_thread::sleep_for(milliseconds(100));  // let the server pick both up
  auto start = SteadyClock::now();
  server.reset();
  CHECK(SecondsSince(start) < 1.0);  // far below the 5 s request timeout
  struct stat st;
  CHECK(::lstat(path.c_str(), &st) != 0);
  CHECK(errno == ENOENT);
  char c;
  CHECK(::recv(silent.get(), &c, 1, 0) <= 0);  // closed without a reply
  auto after = Request(path, {{"cmd", "status"}}, milliseconds(3000));
  CHECK(after.status().code() == Code::kUnavailable);
}

TEST_CASE("DestructorWaitsForARunningHandlerWhoseReplyStillArrives") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  Gate gate;
  auto server = MustStart(path, [&](const json&) -> json {
    gate.Enter();
    return {{"ok", true}, {"cp_seq", 7}};
  });
  json reply;
  std::thread client([&] {
    auto r = Request(path, {{"cmd", "checkpoint"}}, milliseconds(20000));
    if (r.ok()) reply = *r;
  });
  REQUIRE(gate.WaitEntered(1));
  std::thread opener([&] {
    std::this_thread::sleep_for(milliseconds(300));
    gate.Open();
  });
  auto start = SteadyClock::now();
  server.reset();
  CHECK(SecondsSince(start) >= 0.2);  // it waited for the handler
  opener.join();
  client.join();
  CHECK(reply["cp_seq"] == 7);
}

TEST_CASE("DestructorLeavesANewerServersSocketAlone") {
  mirror::test::TempDir dir;
  const std::string path = dir / "ctl.sock";
  auto old_server = MustStart(path);
  REQUIRE(::unlink(path.c_str()) == 0);
  auto new_server = MustStart(path, [](const json&) -> json {
    return {{"ok", true}, {"who", "new"}};
  });
  old_server.reset();
  auto reply = Request(path, {{"cmd", "status"}}, milliseconds(3000));
  REQUIRE(reply.ok());
  CHECK((*reply)["who"] == "new");
}
