// TensorBoard event files written directly, with no TensorFlow or protobuf dependency:
// a file `events.out.tfevents.<unix seconds>.<hostname>` of TFRecords (uint64 length,
// masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes) each holding one
// protobuf `Event` (wall_time 1, step 2, file_version 3, summary 5) whose `Summary` holds
// `Value`s (tag 1, simple_value 2, image 4 = {height 1, width 2, colorspace 3,
// encoded_image_string 4}). The format is TensorFlow's tensorflow/core/util/event.proto,
// summary.proto and lib/io/record_writer.cc; `tensorboard --logdir` reads it.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace scorch::io {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's mask of it.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

class EventWriter {
 public:
  // Creates `dir` and a new event file in it (never appends to an old one: a resumed run
  // adds a file, and TensorBoard drops the old file's events past the new first step).
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;
  const std::string& path() const { return path_; }
  // Scalars of one step (each shown as a curve under its tag, e.g. "train/loss") in one
  // event: one record, flushed as it is written.
  void scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values);
  // A PNG image (height x width, channels 1 or 3) at `step`.
  void image(const std::string& tag, int64_t step, const std::string& png, int64_t height, int64_t width,
             int64_t channels, double wall_time);

 private:
  void record(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace scorch::io
