// raii.cpp: the C API from C++, behind a small RAII wrapper (errors become exceptions, every
// handle frees itself).
//
//   c++ -std=c++17 -DCOGVIEW_SHARED raii.cpp -I include -L target/release -lcogview -Wl,-rpath,target/release
#include "cogview.h"

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace cv {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string &m) : std::runtime_error(m), code(c) {}
};

inline void check(cogview_error *e) {
    if (!e) return;
    std::unique_ptr<cogview_error, decltype(&cogview_error_free)> owned(e, cogview_error_free);
    throw Error(cogview_error_code(e), cogview_error_message(e));
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const { Free(p); }
};

class Images {
  public:
    explicit Images(cogview_images *p) : p_(p) {}
    size_t size() const { return cogview_images_count(p_.get()); }
    cogview_image_view operator[](size_t i) const {
        cogview_image_view v;
        check(cogview_images_get(p_.get(), i, &v));
        return v;
    }
  private:
    std::unique_ptr<cogview_images, Deleter<cogview_images, cogview_images_free>> p_;
};

class Pipeline {
  public:
    explicit Pipeline(const char *model_dir = nullptr) {
        cogview_pipeline_params params = cogview_pipeline_default_params();
        params.model_dir = model_dir;
        cogview_pipeline *p = nullptr;
        check(cogview_pipeline_new(&params, &p));
        p_.reset(p);
    }
    cogview_pipeline *get() const { return p_.get(); }
  private:
    std::unique_ptr<cogview_pipeline, Deleter<cogview_pipeline, cogview_pipeline_free>> p_;
};

class Session {
  public:
    explicit Session(const Pipeline &pipeline) {
        cogview_session *s = nullptr;
        check(cogview_session_new(pipeline.get(), nullptr, &s));
        s_.reset(s);
    }
    Images generate(const std::string &prompt, uint32_t n, uint64_t seed) {
        cogview_generate_params params = cogview_generate_default_params();
        params.prompt = prompt.c_str();
        params.num_images = n;
        params.seed = seed;
        cogview_images *out = nullptr;
        check(cogview_generate(s_.get(), &params, &out));
        return Images(out);
    }
  private:
    std::unique_ptr<cogview_session, Deleter<cogview_session, cogview_session_free>> s_;
};

}  // namespace cv

int main(int argc, char **argv) {
    const char *model_dir = argc > 2 && std::string(argv[1]) == "--model-dir" ? argv[2] : nullptr;
    try {
        cv::Pipeline pipeline(model_dir);
        cv::Session session(pipeline);
        cv::Images images = session.generate("a large yellow triangle at the bottom", 2, 5);
        for (size_t i = 0; i < images.size(); i++) {
            cogview_image_view v = images[i];
            std::printf("image %zu: %ux%u, seed %llu\n", i, v.width, v.height, (unsigned long long)v.seed);
        }
        // An error arrives as an exception with its code.
        try {
            session.generate("", 1, 0);
            std::printf("an empty prompt was accepted\n");
            return 1;
        } catch (const cv::Error &e) {
            std::printf("empty prompt refused (code %d): %s\n", e.code, e.what());
        }
    } catch (const cv::Error &e) {
        std::fprintf(stderr, "error %d: %s\n", e.code, e.what());
        return 1;
    }
    return 0;
}
