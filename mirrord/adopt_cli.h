// `mirrord adopt SOURCE [DIR] [--state-dir SD] [--journal JOURNAL] [--after-seq N] [--json]`:
// the command line of mirrord/adopt.h. Exit codes (docs/operations.md):
//   0 done   1 usage error   2 refused (stderr says why and what to do)
//   3 failed (I/O error, no such store, unreadable journal or state)
//
// Thread-safety: plain functions; AdoptCommand writes to the given streams only.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mirrord/adopt.h"

namespace mirror::d {

inline constexpr int kAdoptDone = 0;
inline constexpr int kAdoptUsageError = 1;
inline constexpr int kAdoptRefused = 2;
inline constexpr int kAdoptFailed = 3;

// The lines for mirrord's usage text (main.cpp prints them with the others).
inline constexpr const char* kAdoptUsage =
    "  mirrord adopt SOURCE [DIR] [--journal JOURNAL] [--after-seq N] [--state-dir SD]\n"
    "                [--json]\n";
// What `mirrord adopt --help` adds below the usage line.
inline constexpr const char* kAdoptHelp =
    "adopt prepares SOURCE's store to receive from the promoted side (failback).\n"
    "With DIR (the old source's BACKING, unmounted) DIR becomes the store's image;\n"
    "without DIR, this machine's promoted store becomes a destination again.\n"
    "--journal names the old mirrorfs journal: the records the promoted side never got\n"
    "(after --after-seq N, or after the promoted_seq of JOURNAL.fenced) are listed in\n"
    "SD/SOURCE/saved/TIME/report.txt with copies of their paths, and the journal\n"
    "is renamed to JOURNAL.adopted-TIME. With mirrord running (SD/mirrord.sock answers)\n"
    "the daemon does it, closing SOURCE's store meanwhile; else it is done here.\n"
    "adopt exits 0 done, 1 usage error, 2 refused (says why), 3 failed (I/O, no store).\n";

// Parses the words after `adopt`. InvalidArgument (the message says which word) on a
// usage error; `*help` is set for -h/--help (nothing else is then required).
common::Result<AdoptRequest> ParseAdoptArgs(const std::vector<std::string>& args, bool* json,
                                            bool* help);

// The success output: what was done and the next steps (text), or one object (JSON):
// {"source","store","image","epoch","report","records","saved_files","exact",
//  "journal_moved_to","saved_dir","log_moved_to","warnings"}.
std::string FormatAdoptText(const AdoptRequest& request, const AdoptResult& result);
nlohmann::json AdoptJson(const AdoptRequest& request, const AdoptResult& result);

// The outcome as the control socket's reply and the CLI's input:
// {"ok":true,"outcome":"done"|"refused"|"failed","error","result":AdoptJson,"text"}.
nlohmann::json AdoptReplyJson(const AdoptRequest& request, const AdoptResult& result);
// The request as the control socket carries it, and back (state_dir is the daemon's).
nlohmann::json AdoptRequestJson(const AdoptRequest& request);
AdoptRequest AdoptRequestFromJson(const nlohmann::json& j, const std::string& state_dir);

// The whole command; returns the exit code. Through the running mirrord's control socket
// when it answers (paths are made absolute first), else here.
int AdoptCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int AdoptCommand(const std::vector<std::string>& args);  // std::cout, std::cerr

}  // namespace mirror::d
