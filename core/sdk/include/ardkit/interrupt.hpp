#pragma once
#include "ardkit/export.hpp"

namespace ardkit {

// SIGINT/SIGTERM/SIGUSR1 set a flag that long loops poll at safe points (after an optimizer step,
// between evaluation batches) to checkpoint and stop; a second signal exits at once.
ARDKIT_API void install_interrupt_handlers();
ARDKIT_API bool interrupt_requested();
ARDKIT_API void clear_interrupt();
// For inner loops that can run for minutes inside one step or batch (an attack's iterations,
// AutoAttack's parts): throws Interrupted once an interrupt has waited kInterruptGrace seconds
// for the enclosing step to end on its own. Short steps thus still end at their safe point (and
// checkpoint there); a long one is abandoned within seconds, and the run resumes from its last
// checkpoint, the evaluation from its last finished batch.
ARDKIT_API void check_interrupt();
constexpr double kInterruptGrace = 2.0;

}  // namespace ardkit

#include "ardkit/error.hpp"

namespace ardkit {
// Thrown from a safe point after an interrupt was requested, or by check_interrupt() from inside
// a long step; the caller records "interrupted".
class ARDKIT_API Interrupted : public Error {
 public:
  Interrupted() : Error(ErrorKind::runtime, "interrupted") {}
  ~Interrupted() override;
};
}  // namespace ardkit
