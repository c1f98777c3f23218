#include "mirrorfs/journal_setup.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/file_replace.h"
#include "common/journal_format.h"

namespace mirror::fs {
namespace {

using common::kVolumeIdXattr;
using common::Status;

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// mkdir -p for the journal's directory; new directories are root-only (0700).
Status MakeParents(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string dir = path.substr(0, pos);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::IOError("mkdir " + dir + " (for the journal)", errno);
    }
  }
  return Status::Ok();
}

}  // namespace

common::Result<std::string> EnsureVolumeId(const std::string& backing) {
  auto existing = common::ReadVolumeId(backing);
  if (!existing.ok()) {
    return existing.status().Annotate("BACKING must support trusted.* xattrs");
  }
  if (*existing) {
    if ((*existing)->empty()) {
      return Status::Corruption(std::string(kVolumeIdXattr) + " of " + backing + " is empty");
    }
    return **existing;
  }
  std::string id = ReadSmallFile("/proc/sys/kernel/random/uuid");
  if (id.size() != 36) return Status::IOError("read /proc/sys/kernel/random/uuid", EIO);
  if (setxattr(backing.c_str(), kVolumeIdXattr, id.data(), id.size(), XATTR_CREATE) != 0) {
    if (errno == EEXIST) return EnsureVolumeId(backing);  // another mount raced us
    return Status::IOError("write " + std::string(kVolumeIdXattr) + " on " + backing, errno);
  }
  return id;
}

std::string CurrentBootId() { return ReadSmallFile("/proc/sys/kernel/random/boot_id"); }

common::Result<uint64_t> VolumeEpoch(const std::string& backing) {
  MIRROR_ASSIGN_OR_RETURN(std::optional<uint64_t> epoch, common::ReadVolumeEpoch(backing));
  return epoch.value_or(1);
}

common::Result<OpenedJournal> OpenMountJournal(const MountConfig& config,
                                               const std::string& volume_id, uint64_t epoch) {
  const std::string& path = config.journal_path;
  OpenedJournal out;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::IOError("stat journal " + path, errno);
    MIRROR_RETURN_IF_ERROR(MakeParents(path));
    common::JournalOptions options;
    // Whole pages: the ring is mapped.
    options.size_bytes = (config.journal_size + 4095) / 4096 * 4096;
    common::JournalIdentity identity{config.source_id, volume_id, epoch};
    MIRROR_ASSIGN_OR_RETURN(out.journal, common::Journal::Create(path, identity, options));
    out.created = true;
    out.same_boot = true;
    return out;
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("journal " + path + " is not a file");
  MIRROR_ASSIGN_OR_RETURN(common::JournalIdentity found, common::Journal::ReadIdentity(path));
  if (found.source_id != config.source_id || found.volume_id != volume_id) {
    return Status::Mismatch("journal " + path + " belongs to source '" + found.source_id +
                            "' volume " + found.volume_id + ", not to source '" +
                            config.source_id + "' volume " + volume_id +
                            " (BACKING's volume id); use another journal=");
  }
  if (found.epoch < epoch) {
    return Status::Mismatch("journal " + path + " is of epoch " + std::to_string(found.epoch) +
                            ", but BACKING was promoted at epoch " + std::to_string(epoch) +
                            ": its records belong to the role that ended there; keep them with "
                            "`mirrord adopt ... --journal " +
                            path + "` or move the journal away");
  }
  auto journal = common::Journal::Open(path, found, {});
  if (!journal.ok()) {
    if (journal.status().code() == common::Code::kCorruption) {
      return Status::Corruption("journal " + path + " is damaged beyond a torn tail: " +
                                journal.status().message());
    }
    return journal.status();
  }
  out.journal = std::move(*journal);
  std::string boot = ReadSmallFile(path + ".boot");
  out.same_boot = !boot.empty() && boot == CurrentBootId();
  return out;
}

common::Status StampJournalBoot(const std::string& journal_path) {
  return common::ReplaceFile(journal_path + ".boot", CurrentBootId() + "\n");
}

}  // namespace mirror::fs
