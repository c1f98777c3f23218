// The integration tests' fixture: a mirrord process in its own TempDir (quick start or a
// config with sources s1, s2, s3, bad, dev (allow_devices) and o (another secret)), record
// streams, and the image that applying records directly gives.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/apply.h"
#include "common/crc32c.h"
#include "common/endian.h"
#include "common/segment_log.h"
#include "mirrord/tests/integration/test_client.h"
#include "mirrord/tests/test_records.h"
#include "tests/unit/test_util.h"
#include "tests/unit/tree_snapshot.h"

namespace mirror::d::test {

namespace c = mirror::common;
using c::WireError;
using mirror::test::SnapshotTree;
using mirror::test::TempDir;
using mirror::test::TreeSnapshot;

inline constexpr const char* kSecret = "correct horse battery staple";

inline void WriteSecret(const std::string& path, const std::string& secret) {
  mirror::test::WriteFileBytes(path, secret + "\n");
  REQUIRE(chmod(path.c_str(), 0600) == 0);
}

// A stream of n records: 8 files created in a directory, then writes across them.
inline std::vector<std::string> MakeStream(uint64_t n, uint64_t epoch = 1, uint64_t first = 1) {
  std::vector<std::string> out;
  static const std::vector<std::string> files = {"d/f0", "d/f1", "d/f2", "d/f3",
                                                 "d/f4", "d/f5", "d/f6", "d/f7"};
  const c::Timespec t{1700000000, 7};
  for (uint64_t s = first; s < first + n; ++s) {
    const uint64_t i = s - 1;
    if (i == 0) {
      out.push_back(OpRec(s, c::MkdirOp{"d", S_IFDIR | 0755, 0, 0, t, t}, epoch));
    } else if (i <= files.size()) {
      out.push_back(OpRec(s, c::CreateOp{files[i - 1], S_IFREG | 0644, 0, 0, t, t}, epoch));
    } else {
      std::string data(16 + i % 97, static_cast<char>('a' + i % 26));
      auto bytes =
          c::EncodeRecord({s, epoch, 1}, c::WriteOp{files[i % files.size()],
                                                    (i * 13) % 8192,
                                                    {1700000000 + static_cast<int64_t>(i), 0},
                                                    data});
      REQUIRE(bytes.ok());
      out.push_back(*bytes);
    }
  }
  return out;
}

inline TreeSnapshot DirectApply(const std::vector<std::string>& recs, size_t count) {
  TempDir dir;
  auto image = c::ImageTree::Open(dir.path());
  REQUIRE(image.ok());
  for (size_t i = 0; i < count; ++i) {
    auto rec = c::DecodeRecord(recs[i]);
    REQUIRE(rec.ok());
    REQUIRE(image->Apply(*rec, c::ApplyOptions{}).ok());
  }
  return SnapshotTree(dir.path());
}

// Sends records [from, to) in frames of `batch`.
inline void Stream(TestClient& client, const std::vector<std::string>& recs, size_t from, size_t to,
                   size_t batch = 256) {
  for (size_t i = from; i < to; i += batch) {
    REQUIRE(client.SendRecords(recs, i, std::min(batch, to - i)).ok());
  }
}

inline std::string Reseal(std::string rec) {
  uint32_t crc = c::crc32c::Mask(c::crc32c::Value(rec.data() + 8, rec.size() - 8));
  c::StoreLE<uint32_t>(rec.data() + 4, crc);
  return rec;
}

struct Daemon {
  TempDir dir;
  std::unique_ptr<MirrordProcess> proc;
  std::string state() const { return dir / "state"; }

  // Quick start: one secret for any source.
  void StartQuick() {
    WriteSecret(dir / "secret", kSecret);
    Restart({"--listen", "127.0.0.1:0", "--state-dir", state(), "--secret-file", dir / "secret"});
  }
  // A config with sources s1..s3, "bad" and "dev" (allow_devices).
  void StartConfigured(const std::string& extra_limits = "") {
    WriteSecret(dir / "secret", kSecret);
    WriteSecret(dir / "other", "another secret");
    std::string sources;
    for (const char* id : {"s1", "s2", "s3", "bad"}) {
      sources += std::string(sources.empty() ? "" : ",") + "{\"id\":\"" + id +
                 "\",\"secret_file\":\"" + (dir / "secret") + "\"}";
    }
    sources +=
        ",{\"id\":\"dev\",\"secret_file\":\"" + (dir / "secret") + "\",\"allow_devices\":true}";
    sources += ",{\"id\":\"o\",\"secret_file\":\"" + (dir / "other") + "\"}";
    std::string config = "{\"listen\":[\"127.0.0.1:0\"],\"state_dir\":\"" + state() +
                         "\",\"limits\":{\"max_frame\":\"1M\",\"max_record\":\"256K\"" +
                         extra_limits + "},\"sources\":[" + sources + "]}";
    mirror::test::WriteFileBytes(dir / "mirrord.json", config);
    Restart({"--config", dir / "mirrord.json"});
  }
  void Restart(std::vector<std::string> args = {}) {
    static std::vector<std::string> last;
    if (!args.empty()) last = args;
    proc.reset();
    auto p = MirrordProcess::Start(last, dir / "mirrord.log");
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    proc = std::move(p).value();
  }
  std::unique_ptr<TestClient> Connect(const std::string& source, uint64_t epoch = 1) {
    auto client = TestClient::Connect(proc->port(), source, kSecret, epoch);
    REQUIRE_MESSAGE(client.ok(), client.status().ToString());
    return std::move(client).value();
  }
};

// Sends `bytes` on a fresh session of `source` and expects ERROR `code` and a close.
inline void ExpectRefused(Daemon& d, const std::string& source, const std::string& bytes,
                          WireError code, uint64_t epoch = 1) {
  auto client = d.Connect(source, epoch);
  REQUIRE(client->SendRaw(bytes).ok());
  auto err = client->ExpectError();
  REQUIRE_MESSAGE(err.ok(), err.status().ToString());
  CHECK_MESSAGE(err->code == code, "got " << c::WireErrorName(err->code) << ": " << err->message);
  CHECK(client->WaitClosed());
}

inline std::string RecordsFrame(const std::vector<std::string>& recs) {
  std::vector<std::string_view> views(recs.begin(), recs.end());
  c::EncodedFrame frame;
  REQUIRE(frame.BuildRecords(c::LoadLE<uint64_t>(recs[0].data() + 16), views).ok());
  return frame.ToBytes();
}

}  // namespace mirror::d::test
