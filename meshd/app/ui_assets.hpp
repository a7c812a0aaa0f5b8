// The /ui page's files, embedded at build time: meshd/app/ui/* become ui_assets.cpp in the
// build directory (meshd/app/ui/embed.cmake), so the page needs nothing from the network
// and nothing from the disk at run time.
#pragma once

#include <span>
#include <string_view>

namespace meshd::app {

struct UiAsset {
  std::string_view name;  // file name under meshd/app/ui/, e.g. "app.js"
  std::string_view content_type;
  std::string_view body;
};

std::span<const UiAsset> ui_assets();

}  // namespace meshd::app
