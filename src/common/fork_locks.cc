#include "common/fork_locks.h"

namespace slabby {

constinit ForkLocks g_fork_locks;

}  // namespace slabby
