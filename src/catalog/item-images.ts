/**
 * The rules for an item's stored images: a thumbnail of bounded size for every new item (unless
 * turned off), the original bytes only when the operator asked for them. Making them never fails an
 * add: the embedding is what the catalogue is for, and the web page shows a placeholder instead.
 */
import sharp from 'sharp';
import { DecodeLimits, mayDecode } from '../images/decode';
import { makeThumbnail, mimeOf, StoredImage } from '../images/thumbnail';

export type ImageKind = 'thumbnail' | 'original';

/** Where stored images are read from (the Store; they are written in the item's transaction). */
export interface ImageReader {
  getImage(sha256: string, kind: ImageKind): Promise<StoredImage | undefined>;
  hasImage(sha256: string, kind: ImageKind): Promise<boolean>;
}

export interface ItemImageOptions {
  /** Longest thumbnail edge in pixels; 0 stores none. */
  thumbnailSize: number;
  keepOriginals: boolean;
  limits: DecodeLimits;
}

export type ItemImageSet = Partial<Record<ImageKind, StoredImage>>;

export class ItemImages {
  constructor(
    private readonly repo: ImageReader,
    private readonly opts: ItemImageOptions,
  ) {}

  /** Whether new items get anything stored besides their vector. */
  get enabled(): boolean {
    return this.opts.thumbnailSize > 0 || this.opts.keepOriginals;
  }

  /** Thumbnail and (if kept) original of untrusted bytes; whatever fails to be made is left out. */
  async make(bytes: Uint8Array): Promise<ItemImageSet> {
    const out: ItemImageSet = {};
    if (this.opts.thumbnailSize > 0) {
      out.thumbnail = await makeThumbnail(bytes, this.opts.thumbnailSize, this.opts.limits).catch(() => undefined);
    }
    if (this.opts.keepOriginals && mayDecode(bytes, this.opts.limits)) {
      const format = await sharp(bytes, { limitInputPixels: false })
        .metadata()
        .then((m) => m.format, () => undefined);
      // A view, not a copy: the caller's buffer lives until the item commits anyway.
      if (format) out.original = { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), type: mimeOf(format) };
    }
    return out;
  }

  /** True when an already stored item lacks what this configuration would store (items from before thumbnails). */
  async missing(sha256: string): Promise<boolean> {
    return (this.opts.thumbnailSize > 0 && !(await this.repo.hasImage(sha256, 'thumbnail'))) || (this.opts.keepOriginals && !(await this.repo.hasImage(sha256, 'original')));
  }

  get(sha256: string, kind: ImageKind): Promise<StoredImage | undefined> {
    return this.repo.getImage(sha256, kind);
  }
}
