# ardkit_add_plugin(<name> SOURCES <src>... [LIBRARIES <lib>...] [OUTPUT_DIRECTORY <dir>])
#
# Builds one ardkit plugin library: a MODULE library (dlopen only, never linked against) named
# <name>.so, linked to the plugin SDK (libardkit_sdk) and LibTorch, with hidden symbols so that two plugin
# libraries cannot shadow each other's code. Used in this tree and, through find_package(ardkit),
# by plugins built outside it. In this tree, a plugin without OUTPUT_DIRECTORY is a built-in one:
# it lands in the built-in plugin folder, is installed there, and is listed in the global property
# ARDKIT_PLUGIN_TARGETS, so adding a plugin is this one line.
function(ardkit_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ardkit_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET ardkit_sdk)
    target_link_libraries(${name} PRIVATE ardkit_sdk ${ARG_LIBRARIES})
  else()
    target_link_libraries(${name} PRIVATE ardkit::sdk ${ARG_LIBRARIES})
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED ARDKIT_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARDKIT_PLUGIN_OUTPUT_DIR}
                                             INSTALL_RPATH "$ORIGIN/../..")
    install(TARGETS ${name} LIBRARY DESTINATION ${ARDKIT_PLUGIN_INSTALL_DIR})
    set_property(GLOBAL APPEND PROPERTY ARDKIT_PLUGIN_TARGETS ${name})
  endif()
  if(TARGET ardkit_pch)
    # In-tree: reuse the one precompiled LibTorch header instead of parsing torch.h per plugin.
    target_precompile_headers(${name} REUSE_FROM ardkit_pch)
  endif()
endfunction()
