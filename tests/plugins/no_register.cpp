// Has the ardkit section and ABI entry point but no ardkit_register: "missing entry symbol".
#include <boost/dll/alias.hpp>

namespace entry {
const void* abi() {
  return nullptr;
}
}  // namespace entry
BOOST_DLL_ALIAS_SECTIONED(entry::abi, ardkit_abi, ardkit)
