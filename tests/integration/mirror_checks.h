// Checks shared by the end-to-end mirroring tests (it_mirror): doctest assertions over a
// MirrorRig. Header-only: it needs doctest, which mirror_rig.cpp does not.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mirror_rig.h"

namespace mirror::itest {

inline std::string JoinFirst(const std::vector<std::string>& lines, size_t max = 40) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max; ++i) out += lines[i] + "\n";
  if (lines.size() > max) out += "... " + std::to_string(lines.size() - max) + " more\n";
  return out;
}

// Creates or replaces (flags O_TRUNC) or extends (O_APPEND) `path` with `data`.
inline bool WriteWholeFile(const std::string& path, const std::string& data, int flags = O_TRUNC) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | flags, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

// Writes n0, n1, ... in `dir` (each "record i\n": create, write, close) until `stop` or an
// error (the mount died); `written` counts those that returned success.
inline void WriteNumbered(const std::string& dir, std::atomic<int>* written,
                          std::atomic<bool>* stop) {
  for (int i = 0; i < 100000 && !stop->load(); ++i) {
    const std::string data = "record " + std::to_string(i) + "\n";
    if (!WriteWholeFile(dir + "/n" + std::to_string(i), data)) return;
    written->store(i + 1);
  }
}

// Polls `mirrorfs status --json` (bounded by `limit`) until it contains `text`; the last
// answer is in *last.
inline bool WaitStatus(MirrorRig& rig, const std::string& text, std::string* last,
                       std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    rig.StatusJson(last);
    if (last->find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

// Starts the rig and makes the workload's directory w/ through the mount.
inline void StartRigWithWorkDir(MirrorRig& rig, const RigOptions& o) {
  std::string error;
  REQUIRE_MESSAGE(rig.Start(o, &error), error);
  REQUIRE(mkdir((rig.mount().mountpoint() + "/w").c_str(), 0755) == 0);
}

// `mirrorfs checkpoint`, then BACKING/sub must equal the image/sub (compared by the
// test's own tree walk) and `mirrorfs verify` must say identical.
inline void ExpectMirrored(MirrorRig& rig, const std::string& sub, const std::string& when) {
  std::string out;
  int rc = rig.Checkpoint(&out);
  REQUIRE_MESSAGE(rc == 0, when << ": mirrorfs checkpoint exited " << rc << ": " << out
                                << "\nmirrorfs stderr:\n"
                                << rig.mount().DaemonStderr());
  std::vector<std::string> diffs = rig.Differences(sub);
  CHECK_MESSAGE(diffs.empty(), when << ": " << diffs.size()
                                    << " differences between BACKING and the image:\n"
                                    << JoinFirst(diffs));
  rc = rig.Verify(&out);
  CHECK_MESSAGE(rc == 0, when << ": mirrorfs verify exited " << rc << ": " << out);
}

// No resync ran in this mount: the stream went on where mirrord said (invariant 4: the
// journal freed nothing mirrord did not hold durably; had it, mirrord's resume seq would
// fall below the journal and a resync would repair the gap and hide it).
inline void ExpectNoResync(MirrorRig& rig, const std::string& when) {
  std::string status;
  REQUIRE(rig.StatusJson(&status) == 0);
  CHECK_MESSAGE(status.find("\"phase\":") == std::string::npos,
                when << ": a resync ran: " << status);
  CHECK_MESSAGE(status.find("\"resync_reason\":\"\"") != std::string::npos, when << ": " << status);
}

}  // namespace mirror::itest
