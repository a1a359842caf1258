#pragma once
#include "ardkit/export.hpp"

namespace ardkit {

// SIGINT/SIGTERM/SIGUSR1 set a flag that long loops poll at safe points (after an optimizer step,
// between evaluation batches) to checkpoint and stop; a second signal exits at once.
ARDKIT_API void install_interrupt_handlers();
ARDKIT_API bool interrupt_requested();
ARDKIT_API void clear_interrupt();

}  // namespace ardkit

#include "ardkit/error.hpp"

namespace ardkit {
// Thrown from a safe point after an interrupt was requested; the caller records "interrupted".
class ARDKIT_API Interrupted : public Error {
 public:
  Interrupted() : Error(ErrorKind::runtime, "interrupted") {}
  ~Interrupted() override;
};
}  // namespace ardkit
