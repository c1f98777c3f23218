// Helpers shared by the journal tests (journal_test.cpp, journal_recovery_test.cpp).
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/journal.h"
#include "common/journal_format.h"

namespace mirror::test {

using common::Journal;
using common::JournalIdentity;
using common::JournalMediumKind;
using common::JournalOptions;

inline const JournalIdentity kIdentity{"source-a", "volume-1", 7};
inline constexpr uint64_t kSmallJournal = 1u << 20;

// Runs the enclosing test once per medium, as two doctest subcases.
#define FOR_EACH_MEDIUM(kind)                          \
  JournalMediumKind kind = JournalMediumKind::kMmap;   \
  SUBCASE("mmap") { kind = JournalMediumKind::kMmap; } \
  SUBCASE("pwrite") { kind = JournalMediumKind::kPwrite; }

inline JournalOptions Options(JournalMediumKind kind, uint64_t size = kSmallJournal) {
  JournalOptions o;
  o.size_bytes = size;
  o.medium = kind;
  return o;
}

inline std::unique_ptr<Journal> MustCreate(const std::string& path, JournalMediumKind kind,
                                           uint64_t size = kSmallJournal) {
  auto j = Journal::Create(path, kIdentity, Options(kind, size));
  REQUIRE_MESSAGE(j.ok(), j.status().ToString());
  return std::move(j).value();
}

inline std::unique_ptr<Journal> MustOpen(const std::string& path, JournalMediumKind kind) {
  auto j = Journal::Open(path, kIdentity, Options(kind));
  REQUIRE_MESSAGE(j.ok(), j.status().ToString());
  return std::move(j).value();
}

// Appends a write of `data` to `path`; returns the seq and the sealed bytes.
struct Appended {
  uint64_t seq = 0;
  std::string bytes;
};
inline Appended MustAppend(Journal& j, const common::Op& op) {
  common::EncodedRecord rec;
  REQUIRE(rec.Build(op).ok());
  auto seq = j.Append(rec);
  REQUIRE_MESSAGE(seq.ok(), seq.status().ToString());
  return {*seq, rec.ToBytes()};
}
inline Appended MustAppendWrite(Journal& j, const std::string& path, const std::string& data) {
  return MustAppend(j, common::WriteOp{path, 0, {1, 2}, data});
}

// Appends writes of `data` to a fresh journal until one more would not fit; returns
// the last seq. The ring is then full for another record of the same size.
inline uint64_t FillRing(Journal& j, const std::string& data) {
  Appended first = MustAppendWrite(j, "fill", data);
  const uint64_t aligned = common::JournalAlignUp(first.bytes.size());
  uint64_t last = first.seq;
  for (uint64_t used = aligned; used + aligned + common::kJournalMinGap <= j.stats().capacity_bytes;
       used += aligned) {
    last = MustAppendWrite(j, "fill", data).seq;
  }
  return last;
}

// Waits for an Append running in `future` that should finish; if it does not, shuts the
// journal down so that the test fails instead of hanging in the future's destructor.
template <class Future>
bool Finishes(Future& future, Journal& j) {
  if (future.wait_for(std::chrono::seconds(10)) == std::future_status::ready) return true;
  j.Shutdown();
  return false;
}

// Every committed record from `from` on, as raw bytes.
inline std::vector<std::string> ReadAll(const Journal& j, uint64_t from) {
  auto cursor = j.ReadFrom(from);
  REQUIRE_MESSAGE(cursor.ok(), cursor.status().ToString());
  std::vector<std::string> out;
  for (;;) {
    auto more = cursor->Next();
    REQUIRE_MESSAGE(more.ok(), more.status().ToString());
    if (!*more) break;
    REQUIRE(cursor->seq() == from + out.size());
    out.emplace_back(cursor->bytes());
  }
  return out;
}

// Byte-level file surgery, as a crash or a disk would do it.
inline void PatchFile(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
          static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// A medium that fails on demand, wrapping a real one.
class FaultyMedium : public common::JournalMedium {
 public:
  explicit FaultyMedium(std::unique_ptr<JournalMedium> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> fail_sync{false};
  std::atomic<bool> fail_write{false};

  uint64_t size() const override { return inner_->size(); }
  const std::string& name() const override { return inner_->name(); }
  common::Status Write(uint64_t offset, std::span<const std::string_view> pieces) override {
    if (fail_write) return common::Status::IOError("injected write failure", EIO);
    return inner_->Write(offset, pieces);
  }
  common::Result<std::string_view> Read(uint64_t offset, uint64_t n,
                                        std::string* scratch) const override {
    return inner_->Read(offset, n, scratch);
  }
  common::Status Sync(uint64_t offset, uint64_t length) override {
    if (fail_sync) return common::Status::IOError("injected msync failure", EIO);
    return inner_->Sync(offset, length);
  }

 private:
  std::unique_ptr<JournalMedium> inner_;
};

}  // namespace mirror::test
