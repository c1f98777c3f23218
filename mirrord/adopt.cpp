#include "mirrord/adopt.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "common/fence_file.h"
#include "common/file_replace.h"
#include "common/journal.h"
#include "common/quote.h"
#include "common/unique_fd.h"
#include "common/volume_attrs.h"
#include "mirrord/config.h"
#include "mirrord/mount_table.h"
#include "mirrord/state_file.h"
#include "mirrord/store_lock.h"

namespace mirror::d {

using common::Result;
using common::Status;
namespace fs = std::filesystem;

namespace {

// The side files a mirrorfs keeps beside its journal (mirrorfs/journal_setup.h,
// mirrorfs/resync_marker.h, and the fenced note).
constexpr const char* kSideSuffixes[] = {".boot", ".fenced", ".out-of-sync"};

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> RealPath(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return Status::FromErrno("realpath " + path, errno);
  std::string out(real);
  std::free(real);
  return out;
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) return path;
  std::string out = abs.lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// One adopt run; each step returns false once it has set the outcome.
class Adopter {
 public:
  // Paths are made absolute first: the report and the output name them for later.
  explicit Adopter(AdoptRequest request) : req_(std::move(request)) {
    req_.state_dir = Absolute(req_.state_dir);
    if (req_.journal) req_.journal = Absolute(*req_.journal);
  }

  AdoptResult Run() {
    r_.store = req_.state_dir + "/" + req_.source_id;
    const bool ok = CheckRequest() && LockStore() && CheckStore() && CheckJournal() &&
                    SaveUnshipped() && PrepareImage() && CleanStore() && MoveJournal() &&
                    WriteState();
    if (ok) r_.outcome = AdoptOutcome::kDone;
    return std::move(r_);
  }

 private:
  bool Refuse(std::string why) {
    r_.outcome = AdoptOutcome::kRefused;
    r_.error = std::move(why);
    return false;
  }
  bool Fail(const Status& s, std::string_view what = "") {
    r_.outcome = AdoptOutcome::kFailed;
    r_.error = what.empty() ? s.ToString() : std::string(what) + ": " + s.ToString();
    return false;
  }
  std::string StatePath() const { return r_.store + "/" + kStateFileName; }
  std::string ImageLink() const { return r_.store + "/image"; }

  bool CheckNotMounted(const std::string& real_dir) {
    std::ifstream in(req_.mounts_path);
    if (!in) return Fail(Status::IOError("open " + req_.mounts_path, errno));
    std::stringstream text;
    text << in.rdbuf();
    if (auto at = MirrorfsMountOver(text.str(), real_dir)) {
      return Refuse(real_dir + " is the backing directory of the mirrorfs mounted at " + *at +
                    "; unmount it first (fusermount3 -u " + *at + ")");
    }
    return true;
  }

  bool CheckRequest() {
    if (!ValidSourceId(req_.source_id)) {
      return Refuse("'" + req_.source_id + "' is not a valid source id");
    }
    if (!req_.dir) return true;
    struct stat st {};
    if (::stat(req_.dir->c_str(), &st) != 0) {
      if (errno == ENOENT) return Refuse(*req_.dir + " does not exist; name the old BACKING");
      return Fail(Status::IOError("stat " + *req_.dir, errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      return Refuse(*req_.dir + " is not a directory; name the old source's BACKING directory");
    }
    Result<std::string> real = RealPath(*req_.dir);
    if (!real.ok()) return Fail(real.status());
    r_.image = *real;
    return CheckNotMounted(r_.image);
  }

  bool LockStore() {
    if (req_.dir) {
      // Failback may make the first store of this machine.
      if (::mkdir(req_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return Fail(Status::IOError("mkdir " + req_.state_dir, errno));
      }
      if (::mkdir(r_.store.c_str(), 0700) != 0 && errno != EEXIST) {
        return Fail(Status::IOError("mkdir " + r_.store, errno));
      }
    } else if (!Exists(r_.store)) {
      return Fail(Status::NotFound("no store of source '" + req_.source_id + "' in " +
                                   req_.state_dir + " (check --state-dir)"));
    }
    Result<common::UniqueFd> lock = LockStoreDir(r_.store);
    if (!lock.ok()) {
      if (lock.status().code() == common::Code::kUnavailable) {
        return Refuse(lock.status().message() +
                      "; stop mirrord (or wait for the other promote or adopt), then run adopt "
                      "again");
      }
      return Fail(lock.status());
    }
    lock_ = std::move(lock).value();
    return true;
  }

  bool CheckStore() { return req_.dir ? CheckNewStore() : CheckPromotedStore(); }

  bool CheckNewStore() {
    if (Exists(StatePath())) {
      return Refuse(
          "the store " + r_.store + " already exists (it has a state file); adopt with a DIR " +
          "makes a new store: move " + r_.store + " away first, or run adopt without DIR to " +
          "turn a promoted store back into a destination");
    }
    struct stat st {};
    if (::lstat(ImageLink().c_str(), &st) != 0) {
      if (errno != ENOENT) return Fail(Status::IOError("lstat " + ImageLink(), errno));
    } else if (S_ISLNK(st.st_mode)) {
      // An earlier adopt that stopped after making the link: the same link is fine.
      Result<std::string> target = RealPath(ImageLink());
      if (!target.ok() || *target != r_.image) {
        return Refuse(ImageLink() + " already points elsewhere; remove it first");
      }
      keep_image_link_ = true;
    } else if (S_ISDIR(st.st_mode)) {
      std::error_code ec;
      if (!fs::is_empty(ImageLink(), ec) || ec) {
        return Refuse(ImageLink() + " is not empty; move it away first");
      }
    } else {
      return Refuse(ImageLink() + " is not a directory; remove it first");
    }
    Result<std::optional<std::string>> volume = common::ReadVolumeId(r_.image);
    if (!volume.ok()) return Fail(volume.status());
    r_.volume_id = volume->value_or("");
    return true;
  }

  bool CheckPromotedStore() {
    Result<SourceState> state = ReadStateFile(StatePath());
    if (!state.ok()) {
      if (state.status().code() == common::Code::kNotFound) {
        return Refuse("the store " + r_.store +
                      " has no state: it is not promoted; nothing to adopt");
      }
      return Fail(state.status());
    }
    if (state->source_id != req_.source_id) {
      return Refuse("the state file " + StatePath() + " belongs to source '" + state->source_id +
                    "'");
    }
    if (!state->promoted) {
      return Refuse("source '" + req_.source_id +
                    "' is not promoted (its store is a destination already); nothing to adopt");
    }
    old_state_ = *state;
    r_.volume_id = state->volume_id;
    Result<std::string> real = RealPath(ImageLink());
    if (!real.ok()) return Fail(real.status());
    r_.image = *real;
    return CheckNotMounted(r_.image);
  }

  bool CheckJournal() {
    if (!req_.journal) {
      r_.warnings.push_back(
          "no --journal: writes the old side never shipped are not listed or saved");
      return true;
    }
    const std::string& j = *req_.journal;
    Result<common::JournalIdentity> id = common::Journal::ReadIdentity(j);
    if (!id.ok()) return Fail(id.status());
    if (id->source_id != req_.source_id) {
      return Refuse("journal " + j + " belongs to source '" + id->source_id + "', not '" +
                    req_.source_id + "'; name the journal of this source");
    }
    if (!r_.volume_id.empty() && id->volume_id != r_.volume_id) {
      return Refuse("journal " + j + " belongs to volume '" + id->volume_id + "', but " +
                    (req_.dir ? *req_.dir : r_.store) + " is volume '" + r_.volume_id +
                    "'; name the journal of this directory");
    }
    journal_epoch_ = id->epoch;
    Result<std::optional<common::FenceInfo>> fenced = common::ReadFenceFile(j + ".fenced");
    if (!fenced.ok()) {
      if (fenced.status().code() != common::Code::kCorruption) return Fail(fenced.status());
      r_.warnings.push_back(fenced.status().message() + "; ignored");
    } else if (*fenced) {
      fenced_ = **fenced;
    }
    if (req_.after_seq) {
      after_seq_ = req_.after_seq;
      after_from_ = "--after-seq";
    } else if (fenced_ && fenced_->promoted_seq > 0) {
      after_seq_ = fenced_->promoted_seq;
      after_from_ = j + ".fenced";
    }
    out_of_sync_ = Exists(j + ".out-of-sync");
    return true;
  }

  // saved/<time>/ (made once; "-2", "-3", ... when the name is taken).
  bool EnsureSavedDir() {
    if (r_.saved_dir) return true;
    const std::string saved = r_.store + "/saved";
    if (::mkdir(saved.c_str(), 0700) != 0 && errno != EEXIST) {
      return Fail(Status::IOError("mkdir " + saved, errno));
    }
    for (int n = 1;; ++n) {
      const std::string name = n == 1 ? stamp_ : stamp_ + "-" + std::to_string(n);
      const std::string dir = saved + "/" + name;
      if (req_.journal && Exists(*req_.journal + ".adopted-" + name)) continue;
      if (::mkdir(dir.c_str(), 0700) == 0) {
        stamp_ = name;
        r_.saved_dir = dir;
        return true;
      }
      if (errno != EEXIST || n > 1000) return Fail(Status::IOError("mkdir " + dir, errno));
    }
  }

  bool SaveUnshipped() {
    if (!req_.journal) return true;
    Result<UnshippedList> list = ListUnshipped(*req_.journal, after_seq_);
    if (!list.ok()) return Fail(list.status(), "reading the journal");
    if (!EnsureSavedDir()) return false;
    FailbackReport report;
    report.source_id = req_.source_id;
    report.journal = *req_.journal;
    report.image = r_.image;
    report.created = IsoTimeMs(now_ns_);
    report.after_from = after_from_;
    report.out_of_sync_marker = out_of_sync_;
    report.list = std::move(list).value();
    std::vector<std::string> paths;
    for (const UnshippedRecord& rec : report.list.records) {
      paths.insert(paths.end(), rec.paths.begin(), rec.paths.end());
    }
    Result<SavedCopies> copies = SaveCurrentCopies(r_.image, paths, *r_.saved_dir + "/files");
    if (!copies.ok()) return Fail(copies.status(), "saving copies");
    report.copies = std::move(copies).value();
    if (Status s = WriteReports(*r_.saved_dir, report); !s.ok())
      return Fail(s, "writing the report");
    r_.report = *r_.saved_dir + "/report.txt";
    r_.records = report.list.records.size();
    r_.saved_files = report.copies.saved.size();
    r_.exact = report.exact();
    if (!report.list.after_seq) {
      r_.warnings.push_back(
          "which records reached the promoted side is unknown (no --after-seq, no "
          "promoted_seq in " +
          *req_.journal + ".fenced): every live record is listed");
    } else if (!r_.exact) {
      r_.warnings.push_back(
          "the journal was out of sync: records freed before they were shipped are not listed");
    }
    return true;
  }

  bool PrepareImage() {
    if (!req_.dir || keep_image_link_) return true;
    if (Exists(ImageLink()) && ::rmdir(ImageLink().c_str()) != 0) {
      return Fail(Status::IOError("rmdir " + ImageLink(), errno));
    }
    if (::symlink(r_.image.c_str(), ImageLink().c_str()) != 0) {
      return Fail(Status::IOError("symlink " + ImageLink(), errno));
    }
    if (Status s = common::SyncDirectory(r_.store); !s.ok()) return Fail(s);
    return true;
  }

  // What a forced promote may have left: records received and never applied.
  bool CleanStore() {
    const std::string log = r_.store + "/log";
    std::error_code ec;
    if (fs::is_directory(log, ec) && !fs::is_empty(log, ec)) {
      if (!EnsureSavedDir()) return false;
      const std::string to = *r_.saved_dir + "/log";
      if (::rename(log.c_str(), to.c_str()) != 0) {
        return Fail(Status::IOError("rename " + log + " to " + to, errno));
      }
      r_.log_moved_to = to;
    }
    const std::string memory = r_.store + "/memory";
    if (::unlink(memory.c_str()) != 0 && errno != ENOENT) {
      return Fail(Status::IOError("remove " + memory, errno));
    }
    if (Status s = common::SyncDirectory(r_.store); !s.ok()) return Fail(s);
    return true;
  }

  bool MoveJournal() {
    if (!req_.journal) return true;
    const std::string& j = *req_.journal;
    const std::string moved = j + ".adopted-" + stamp_;
    auto move = [&](const std::string& from, const std::string& to) {
      if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
        return Fail(Status::IOError("rename " + from + " to " + to, errno));
      }
      return true;
    };
    if (!move(j, moved)) return false;
    r_.journal_moved_to = moved;
    for (const char* suffix : kSideSuffixes) {
      if (!Exists(j + suffix)) continue;
      if (!move(j + suffix, moved + suffix)) return false;
      r_.side_files_moved.push_back(moved + suffix);
    }
    if (Status s = common::SyncDirectory(ParentOf(j)); !s.ok()) return Fail(s);
    return true;
  }

  bool WriteState() {
    SourceState state;
    state.source_id = req_.source_id;
    state.volume_id = r_.volume_id;
    uint64_t epoch = old_state_ ? old_state_->epoch : 0;
    if (fenced_) epoch = std::max(epoch, fenced_->epoch);
    if (req_.journal) epoch = std::max(epoch, journal_epoch_ + 1);
    state.epoch = epoch;
    // The image is not yet the source's: its first session must resync (adopted: WELCOME
    // says resume_seq 0), and promote refuses it until that resync is applied.
    state.resync_active = true;
    state.resync_until = 0;
    state.adopted = true;
    r_.epoch = epoch;
    // From here mirrord writes the image: mirrorfs must refuse to mount it.
    if (Status s = common::WriteImageMark(r_.image, r_.store); !s.ok()) {
      r_.warnings.push_back("could not mark " + r_.image + " as mirrord's image (" + s.ToString() +
                            "): do not mount mirrorfs over it");
    }
    if (Status s = WriteStateFile(StatePath(), state); !s.ok()) return Fail(s);
    return true;
  }

  AdoptRequest req_;
  const int64_t now_ns_ = req_.now_ns != 0 ? req_.now_ns : common::RealtimeNs();
  std::string stamp_ = CompactUtcTime(now_ns_);
  AdoptResult r_;
  common::UniqueFd lock_;  // the store's lock, held to the end
  bool keep_image_link_ = false;
  std::optional<SourceState> old_state_;
  std::optional<common::FenceInfo> fenced_;
  uint64_t journal_epoch_ = 0;
  std::optional<uint64_t> after_seq_;
  std::string after_from_;
  bool out_of_sync_ = false;
};

}  // namespace

AdoptResult Adopt(const AdoptRequest& request) { return Adopter(request).Run(); }

}  // namespace mirror::d
