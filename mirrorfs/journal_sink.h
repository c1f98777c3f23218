// JournalSink: the MutationSink that journals every change before BACKING sees it.
//
// Journal first, release after apply (docs/mirrorfs.md, "Ordering of a change"):
//   Before(m)  chooses the change's time T (CLOCK_REALTIME), builds its record from the
//              MutationInfo and the inode table's paths (record_builder.h), and appends it
//              to the journal *held*: complete in the file, invisible to readers.
//   the op     makes the change on BACKING.
//   After(m)   on success sets the recorded times on BACKING (so BACKING and record agree),
//              appends corrections where BACKING decided something the record could only
//              predict (owner, group and mode of a new node, mode after chown, inherited
//              ACLs, a short write), then releases the record; on failure voids it.
// Both run inside the mutation's ordering section (ordering.h), so the journal's order
// is BACKING's order (invariant 2).
//   Settle(m)  after the section, with mirroring: wakes the replication client and waits
//              for mirrord's acknowledgement as the mode asks (invariant 3).
//
// A change to an inode with no name left (written through an fd after its last unlink)
// changes nothing that the volume shows and gets no record. A change to an inode with
// links but no name known to the inode table (BACKING changed behind the mount) cannot
// be journaled: it is made, counted in unjournaled() and logged, and the mirror needs a
// resync (issue 5).
//
// Thread-safety: Before/After run concurrently from FUSE threads; counters are atomic.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/journal.h"
#include "mirrorfs/inode_table.h"
#include "mirrorfs/mutation.h"
#include "mirrorfs/replication_client.h"

namespace mirror::fs {

class JournalSink final : public MutationSink {
 public:
  // `journal` must outlive the sink. Attach() must be called before the first mutation.
  explicit JournalSink(common::Journal& journal) : journal_(journal) {}

  void Attach(InodeTable& inodes) { inodes_ = &inodes; }
  // With mirroring: Settle tells `client` about the new records and waits as its mode
  // says. Set before the first mutation; `client` must outlive the sink's use.
  void AttachMirror(ReplicationClient* client) { mirror_ = client; }

  int Before(const Mutation& m) override;
  void After(const Mutation& m, int err) override;
  void Settle(const Mutation& m) override;

  uint64_t unjournaled() const { return unjournaled_.load(std::memory_order_relaxed); }
  uint64_t journal_errors() const { return journal_errors_.load(std::memory_order_relaxed); }

 private:
  void SetTimesOnBacking(const Mutation& m);
  void AppendCorrections(const Mutation& m);
  void AppendShortWrite(const Mutation& m);
  void Append(const Mutation& m, const common::Op& op, const char* what);
  void ReportJournalError(const common::Status& status, const char* what);

  common::Journal& journal_;
  InodeTable* inodes_ = nullptr;
  ReplicationClient* mirror_ = nullptr;
  std::atomic<uint64_t> unjournaled_{0};
  std::atomic<uint64_t> journal_errors_{0};
};

}  // namespace mirror::fs
