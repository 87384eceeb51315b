/* Placeholder until guest/build.sh generates the real table (no images yet). */
#include "guest_images.h"
#include <string.h>
const unsigned char *swiftlet_guest_image(const char *name, size_t *size) { (void)name; *size = 0; return NULL; }
const char *swiftlet_guest_image_name(size_t index) { (void)index; return NULL; }
