/** Image decoding and open_clip preprocessing. */
export { decodeImage, maxImageFileBytes, type DecodeOptions } from './decode.js';
export { preprocessImage, preprocessImages, transformDecoded } from './preprocess.js';
export { DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, type DecodedImage, type ImageSource, type PixelMode, type PreprocessImageOptions, type RawImage } from './types.js';
