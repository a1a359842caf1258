// Built with -DARDKIT_ABI_VERSION=999: the host must refuse it before calling anything else.
#include <ardkit/ardkit.hpp>

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::hook, "never_registered", "0", "must not load", {},
               [](const ardkit::Params&, const ardkit::BuildContext&) {
                 return std::make_shared<ardkit::Hook>();
               });
}
