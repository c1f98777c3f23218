// Manifests: what a tree holds, computed the same way on both sides (issue 5: resync,
// baseline and `mirrorfs verify` compare BACKING with mirrord's image without copying
// data back). A manifest lists every entry below a root (the root itself is not listed:
// the image's root directory belongs to mirrord), in walk order: depth-first, pre-order,
// children in byte order of their names, so parents come before their children.
//
//   ManifestOptions o;  o.content_hashes = true;
//   MIRROR_ASSIGN_OR_RETURN(Manifest m, BuildManifest("/srv/data", o));
//   std::string bytes;  EncodeManifestEntries(m, &bytes);           // for the wire
//   MIRROR_ASSIGN_OR_RETURN(Manifest back, DecodeManifestEntries(bytes));
//   for (const ManifestDiff& d : CompareManifests(source, image, {})) ... d.Describe()
//
// Block sums (resync of a file that differs): one digest per block of a regular file, so
// that only differing blocks are sent. Format of the encoded entries: docs/formats.md,
// "Manifest entries".
//
// Thread-safety: pure functions over their arguments; reentrant.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace mirror::common {

struct ManifestEntry {
  std::string path;   // relative to the root, no leading "/": "a", "a/b"
  uint32_t mode = 0;  // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;     // regular files and symlinks; 0 for the rest
  int64_t mtime_ns = 0;  // since the epoch (directories too)
  uint64_t rdev = 0;     // character and block devices; 0 for the rest
  uint32_t nlink = 0;    // regular files; 0 for the rest (directory link counts differ by fs)
  // Hard links: the path (in this manifest) of the first entry of the same inode in walk
  // order; empty for that first entry and for inodes with one name.
  std::string link_to;
  std::string target;  // symlinks: the target, as stored
  // Every xattr except those under ManifestOptions::skip_xattr_prefixes, by name (sorted).
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Regular files, with ManifestOptions::content_hashes: SHA-256 of the content (32
  // bytes); empty otherwise (and for the later names of a hard-linked inode).
  std::string content_hash;
  friend bool operator==(const ManifestEntry&, const ManifestEntry&) = default;
};
using Manifest = std::vector<ManifestEntry>;

struct ManifestOptions {
  bool content_hashes = false;
  // Xattrs that are not the volume's content (mirrorfs's own bookkeeping on BACKING).
  std::vector<std::string> skip_xattr_prefixes = {"trusted.mirrorfs."};
  uint64_t max_entries = 10'000'000;  // a larger tree is refused (Full), not half-listed
};

// Walks `root` (a directory) without following symlinks and without crossing into other
// filesystems (a mount point below the root is listed as the directory it covers, with
// nothing under it). IOError naming the path for an entry that cannot be read; an entry
// that disappears during the walk (ENOENT) is left out.
Result<Manifest> BuildManifest(const std::string& root, const ManifestOptions& options);

// A batch of entries as bytes and back. Decoding checks every length and rejects
// trailing bytes; it never trusts the input (Corruption naming the entry and field).
void EncodeManifestEntries(std::span<const ManifestEntry> entries, std::string* out);
Result<Manifest> DecodeManifestEntries(std::string_view bytes);

struct ManifestDiff {
  enum class Kind {
    kMissing,  // in the source, not in the image
    kExtra,    // in the image, not in the source
    kType,     // both, of different types (file vs directory, ...)
    kMeta,     // mode, owner, size, mtime, rdev, target, link_to or xattrs differ
    kContent,  // content hashes differ (both present)
  };
  Kind kind;
  std::string path;
  std::string detail;  // what differs, for people: "size 10 vs 12; mtime ... vs ..."
  std::string Describe() const;  // "a/b: missing in the image", "a/c: size 10 vs 12"
};

struct ManifestCompareOptions {
  bool mtime = true;  // directories' and files' mtimes
  bool content = true;  // content hashes, where both entries have one
};

// `source` and `image` as BuildManifest makes them (walk order); the differences in walk
// order of the source, then the extra entries of the image (in its walk order).
std::vector<ManifestDiff> CompareManifests(const Manifest& source, const Manifest& image,
                                           const ManifestCompareOptions& options = {});

// Block sums: the first 16 bytes of SHA-256 of each `block_size` block of the file open
// at `fd` (the last block may be short), from offset 0 to its size.
using BlockSum = std::array<uint8_t, 16>;
Result<std::vector<BlockSum>> FileBlockSums(int fd, uint32_t block_size);
// The sum of `data` (a block read from a file), as FileBlockSums computes it.
BlockSum SumOfBlock(std::string_view data);

}  // namespace mirror::common
