// The mirrorfs administration commands, which ask a running mirrorfs daemon over its
// control socket (docs/control.md):
//   mirrorfs status MOUNTPOINT [--json] [--timeout SECONDS]
//   mirrorfs checkpoint MOUNTPOINT [--timeout SECONDS]
// main() hands argv to RunCli when IsCliCommand(argv[1]).
//
// The socket of the daemon serving MOUNTPOINT is found from the mountpoint's name alone,
// never by touching the mount, so a hung FUSE mount cannot hang `mirrorfs status`.
// Thread-safety: the functions are reentrant; ControlSocketPath reads the environment.
#pragma once

#include <ostream>
#include <string>

namespace mirror::fs {

// Exit codes of the commands (also in their --help text and docs/control.md).
inline constexpr int kCliOk = 0;  // status: state "running"; checkpoint: done
inline constexpr int kCliUsage = 1;        // verify: also "differences found"
inline constexpr int kCliFailed = 2;       // status: a degraded state; checkpoint: refused/failed
inline constexpr int kCliUnreachable = 3;  // no daemon answers (or not in time)

// `mountpoint` made absolute against the current directory, with ".", "..", repeated and
// trailing slashes removed lexically, then the PARENT directory resolved with realpath()
// (kept lexical if that fails). The last component itself is never looked at: stat() of a
// hung FUSE mount would hang, and the mount covers it anyway. "/" stays "/".
std::string NormalizeMountpoint(const std::string& mountpoint);

// The control socket of the daemon for `mountpoint`:
// RUN_DIR/<first 16 hex digits of SHA-256(NormalizeMountpoint(mountpoint))>.sock, where
// RUN_DIR is $MIRRORFS_RUN_DIR if set and non-empty, else /run/mirrorfs.
std::string ControlSocketPath(const std::string& mountpoint);

// True for the command words RunCli handles ("status", "checkpoint"); `arg` may be null.
bool IsCliCommand(const char* arg);

// Runs `argv[1]` (a command) with its arguments argv[2..]; returns the exit code. Writes
// results to `out` and diagnostics to `err` (the first form: std::cout and std::cerr).
int RunCli(int argc, char** argv);
int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace mirror::fs
