// Built with -D_GLIBCXX_USE_CXX11_ABI=0, as plugins compiled against pip's PyTorch wheels are: its
// std::string is not this ardkit's, so the core's functions it calls do not exist for it and the
// library cannot load. The host must name that cause, not only the missing symbol.
#include <boost/dll/alias.hpp>

#include <ardkit/error.hpp>

namespace entry {
const void* abi() {
  return nullptr;
}
void register_plugins(void*) {
  ardkit::throw_plugin_error("never reached");
}
}  // namespace entry
BOOST_DLL_ALIAS_SECTIONED(entry::abi, ardkit_abi, ardkit)
BOOST_DLL_ALIAS_SECTIONED(entry::register_plugins, ardkit_register, ardkit)
