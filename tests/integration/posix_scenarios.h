// The POSIX comparison scenarios: small named syscall sequences that run
// identically in a plain directory and in a FUSE mount; see posix_test.cpp.
//
// A scenario's setup() runs first, as root, in the fresh work directory (for
// files the tested identity must not own); run() then runs as the identity under
// test with umask 022. Both record into Ops; everything recorded is compared.
#pragma once

#include <vector>

#include "scenario_ops.h"

namespace mirror::itest {

struct Scenario {
  const char* name;
  void (*setup)(Ops&);  // may be nullptr
  void (*run)(Ops&);
  bool as_root = true;
  bool as_user = true;  // uid/gid 65534, owner of the work directory
};

// All scenarios, in a fixed order; names are unique.
const std::vector<Scenario>& PosixScenarios();

// The families, each in its own file; PosixScenarios() concatenates them.
void AddFileScenarios(std::vector<Scenario>* out);       // open, io, sizes, holes
void AddMetadataScenarios(std::vector<Scenario>* out);   // modes, owners, times, xattrs
void AddNamespaceScenarios(std::vector<Scenario>* out);  // dirs, links, renames, nodes

}  // namespace mirror::itest
