// Opening the mount's journal: the volume id on BACKING, the journal file (created on
// first use, or opened and recovered), and which boot wrote it last.
//
// The volume id is a random UUID kept in BACKING's root as the xattr
// trusted.mirrorfs.volume_id, written at the first mount; a journal is bound to
// (source id, volume id) in its header, so it is never replayed onto another directory.
//
// The boot id of the kernel that last served the journal is kept beside it in
// "<journal>.boot" (written by rename). Recovery needs it (docs/mirrorfs.md, "Crash
// recovery"): the same boot means only the daemon died and BACKING kept every change
// made before; another boot means BACKING may have lost what was not yet synced.
#pragma once

#include <memory>
#include <string>

#include "common/journal.h"
#include "common/status.h"
#include "common/volume_attrs.h"
#include "mirrorfs/mount_config.h"

namespace mirror::fs {

// Reads BACKING's volume id, or writes a new one. IOError when BACKING cannot hold it.
common::Result<std::string> EnsureVolumeId(const std::string& backing);

// This kernel's boot id ("" if unreadable).
std::string CurrentBootId();

struct OpenedJournal {
  std::unique_ptr<common::Journal> journal;
  bool created = false;    // a new, empty journal
  bool same_boot = false;  // last served by this boot (the daemon died, not the machine)
};

// BACKING's epoch: trusted.mirrorfs.epoch (written when `mirrord promote` made BACKING
// a promoted image), 1 without it.
common::Result<uint64_t> VolumeEpoch(const std::string& backing);

// Creates or opens config.journal_path for (source_id, volume_id); a new journal takes
// `epoch`. Errors are one line for the admin: Mismatch (the journal belongs to another
// source or volume, or to an older epoch than `epoch`: the role it served has ended),
// Corruption (damaged beyond a torn tail), InvalidArgument (too small), IOError.
common::Result<OpenedJournal> OpenMountJournal(const MountConfig& config,
                                               const std::string& volume_id, uint64_t epoch);

// Records that this boot now serves the journal (after recovery, before serving).
common::Status StampJournalBoot(const std::string& journal_path);

}  // namespace mirror::fs
