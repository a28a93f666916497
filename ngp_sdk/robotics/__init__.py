"""Robot recordings in: ROS 1 / ROS 2 bags and MCAP, TF poses, depth, replay into live sessions.

Needs the optional extra ``ros`` (``pip install 'ngp-sdk[ros]'``: the ``rosbags`` library, no ROS installation)
for reading and writing bags; :mod:`ngp_sdk.robotics.messages` and :mod:`ngp_sdk.robotics.tf` need nothing beyond
NumPy, so a live ROS 2 node (``samples/ros2_node.py``) shares them.

- :func:`import_rosbag` (``ngp import rosbag``): a bag -> a ``transforms.json`` dataset.
- :class:`BagFrames`: the posed frames of a bag (the one conversion path of import and replay).
- :func:`bridges.replay.replay_bag` (``ngp serve --replay``): a bag streamed into a live session over the bridge.
- :class:`TfBuffer`: ``/tf`` + ``/tf_static``, chains resolved and interpolated at any stamp.
- :class:`LiveFrameAssembler`: live messages -> posed frames (the ROS 2 node's logic, no ROS needed).
- :class:`BagWriter`, :func:`write_capture`: bags made in code.
"""

from ngp_sdk.robotics.bag import Bag, BagError
from ngp_sdk.robotics.frames import BagFrames, FrameOptions, PosedFrame
from ngp_sdk.robotics.importer import ImportResult, import_rosbag
from ngp_sdk.robotics.live import LiveFrameAssembler
from ngp_sdk.robotics.messages import MessageError
from ngp_sdk.robotics.scene_box import SceneBox, choose_scene_box, estimate_scene_box, scene_box_from_aabb
from ngp_sdk.robotics.tf import TfBuffer, TfError
from ngp_sdk.robotics.writer import BagWriter, write_capture

__all__ = ["Bag", "BagError", "BagFrames", "FrameOptions", "PosedFrame", "ImportResult", "import_rosbag",
           "LiveFrameAssembler",
           "MessageError", "SceneBox", "choose_scene_box", "estimate_scene_box", "scene_box_from_aabb",
           "TfBuffer", "TfError",
           "BagWriter", "write_capture"]
