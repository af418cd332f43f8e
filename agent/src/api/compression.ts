// The wire's ImageCompression ↔ the domain's names (spice-server's image_compression values).
import { ImageCompression } from "../gen/qumra/v1/display.js";
import { invalidArgument } from "../errors.js";
import type { ImageCompression as Compression } from "../display/types.js";

const FROM_PB: Partial<Record<ImageCompression, Compression>> = {
  [ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ]: "auto_glz",
  [ImageCompression.IMAGE_COMPRESSION_AUTO_LZ]: "auto_lz",
  [ImageCompression.IMAGE_COMPRESSION_QUIC]: "quic",
  [ImageCompression.IMAGE_COMPRESSION_GLZ]: "glz",
  [ImageCompression.IMAGE_COMPRESSION_LZ]: "lz",
  [ImageCompression.IMAGE_COMPRESSION_OFF]: "off",
};
const TO_PB = new Map(Object.entries(FROM_PB).map(([pb, name]) => [name, Number(pb) as ImageCompression]));

/** The domain name of a wire value; undefined for UNSPECIFIED; INVALID_ARGUMENT (naming `field`) for unknown values. */
export function compressionFromPb(pb: ImageCompression, field: string): Compression | undefined {
  if (pb === ImageCompression.IMAGE_COMPRESSION_UNSPECIFIED) return undefined;
  const name = FROM_PB[pb];
  if (!name) throw invalidArgument(`${field} ${pb} is not a known ImageCompression`);
  return name;
}

export function compressionToPb(name: Compression | undefined): ImageCompression {
  return name ? TO_PB.get(name)! : ImageCompression.IMAGE_COMPRESSION_UNSPECIFIED;
}
