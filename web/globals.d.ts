//! Types for tsc --checkJs only (never served): the handles the pages hang on `window` for people debugging in the console and for the browser tests.
interface Window {
  /** The page's handle (state, stats(), …): every page sets its own shape. */
  classrelay?: any;
  /** The observer workspace's handle (observe.js). */
  classrelayObserve?: any;
}
